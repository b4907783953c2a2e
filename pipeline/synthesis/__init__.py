"""Long-context QA synthesis: teacher-free tasks and teacher self-instruct, grounded and deduplicated."""
