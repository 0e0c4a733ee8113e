"""Optional sync of Andon's billing to Stripe (the ``stripe`` extra): customers, products, prices,
meters and subscriptions keyed by Andon ids, usage as meter events, invoice webhooks, reconciliation."""
