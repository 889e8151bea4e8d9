"""The notifier: tells customers what they must hear about, by e-mail (docs/requirements.md N, P3).

``domain`` holds the catalogue of message kinds, their routing and rendering;
``mailer`` is the SMTP adapter; the Nameko service calls both.
"""
