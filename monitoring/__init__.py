"""Model monitoring and validation: forecasters, walk-forward evaluation, regime triggers, VaR backtests."""
