"""The ledger: balances, the journal of money movements, invoices, taxes and payment methods."""
