"""The service's side of the Rasa bot (bot/): its HTTP client, and the Rasa and action servers that
run_hotline.py starts and supervises."""
