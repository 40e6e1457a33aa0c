"""A Telegram bot that helps cardholders settle overdue credit-card debt."""
