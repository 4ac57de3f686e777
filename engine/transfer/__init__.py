"""Local trees in and out of a vault: import, export (through directory descriptors), verify.

May import every engine room below the front; it works on what the front hands it, never on ``Vault`` itself.
"""
