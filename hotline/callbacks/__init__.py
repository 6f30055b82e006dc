"""Callbacks (回访): after every resolution the resident is asked, on their own channel, whether it was
resolved; the answer closes the ticket or reopens it. Tasks, the survey's answers, the scheduler that
carries tasks out, and the signed survey links for residents outside WeChat's 48-hour window."""
