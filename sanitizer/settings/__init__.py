"""Settings: one typed, validated config for a run and one declaration of every option and flag. Imports errors and nothing else of sanitizer."""
