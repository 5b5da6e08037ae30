"""Liquidity, trading costs and capacity."""
