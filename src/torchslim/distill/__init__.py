"""Knowledge distillation: a student learns to mimic a teacher (issue 5; being built)."""
