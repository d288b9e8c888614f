"""The MM-DREX vision-language router: reads candlestick-chart images (``router.charts``) and long-horizon
features, weights the experts, and combines their exposures into the routed ``drex`` strategy.

Nothing heavy is imported here (the CLI's start-up stays fast).
"""
