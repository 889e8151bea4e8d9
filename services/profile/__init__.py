"""The profile service: accounts, sessions, personal data, security and notification settings."""
