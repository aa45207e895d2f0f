"""The database schema: versioned migrations and the command that applies them."""
