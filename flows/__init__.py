"""lengthwise flows."""
