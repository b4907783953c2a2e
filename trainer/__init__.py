"""lengthwise trainer."""
