"""Pure business rules: no Telegram, no database."""
