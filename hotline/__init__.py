"""The 24-hour hotline and chatbot service of a municipal water utility."""
