"""Pages for the public (no sign-in), served from memory: /privacy. (/commitments lives with the reports.)"""
