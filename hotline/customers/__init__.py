"""The customer archive as residents and agents see it: accounts, bills, outages."""
