"""Vendor sources: file readers and the contract-driven typing of their records."""
