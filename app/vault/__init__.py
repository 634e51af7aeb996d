"""The encrypted vault: key slots, the SQLCipher store, records and the service.

Headless and Qt-free (an import-linter contract enforces it). The UI and the CLI use
``VaultService``; nothing else here is meant to be driven from outside.
"""
