"""Custom NLU components of the hotline bot (loaded by Rasa from this folder, no download at run time)."""
