"""The service's side of the Rasa bot: its client, and the processes run_hotline.py starts."""
