"""Residents' personal data over time: retention (保存期限) enforced by a daily purge, and a resident's
rights to a copy of their data (export) and to its erasure (erase), each audited in `privacy_runs`.

What is kept for legal reasons: the customer archive (户号, holder, premises) with its bills and
payments (accounting archives), and tickets' business facts (category, business type, department,
times, outcome, area). What goes: contact data (phones, WeChat ids, names and addresses given on
tickets), what residents said or wrote, recordings, and the bot's memory of them.
"""
