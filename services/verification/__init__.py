"""Phone verification: flash call, voice call or SMS, through a primary and a fallback gateway."""
