"""The read audit (查阅记录): evidence of who looked at which resident's data."""
