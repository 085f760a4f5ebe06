"""Who is who: the roles and what each may see (:mod:`.access`, :mod:`.scope`) and the names of
keys and people across connections (:mod:`.names`)."""
