"""Small utility domains (config.*, docs.*) arrive with their issues."""
