"""Static pages (about, contact) and the site's settings (title, tagline, description)."""
