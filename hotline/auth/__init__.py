"""Staff sign-in: password hashing, sessions, and who may do what."""
