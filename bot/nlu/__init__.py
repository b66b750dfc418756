"""Indonesian NLU pieces: the normaliser and Garda's custom Rasa graph components."""
