"""The engagement timeline: what each provider says about a person."""
