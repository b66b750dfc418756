"""rasa-sdk custom actions. Thin by design: each translates between Rasa and a service in
``bot/`` (STYLE.md). The foundation needs none: every answer is a domain response chosen
by ``bot.brain``; the escalation handoff adds the first actions here."""
