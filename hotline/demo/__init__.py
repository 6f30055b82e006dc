"""Demo data for trying the service out: a seeded town (run_hotline.py seed-demo)."""
