"""The admins' web console: users and sessions (:mod:`bot.admin.users`) and the pages
under /admin (:mod:`bot.admin.console`). See docs/console.md."""
