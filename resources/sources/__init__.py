"""Source systems as data: one definition per source (README, "Source definitions")."""
