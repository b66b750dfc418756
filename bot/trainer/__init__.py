"""Trainer tools: the review inbox, labelling (web console and terminal), and the writer
that turns a label into a Rasa training example. See docs/training.md."""
