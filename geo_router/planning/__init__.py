"""The planner's workflow: versions of the city's zone layers (upload, validation, history).

:mod:`.upload_file` reads an uploaded layer file within the size and vertex limits,
:mod:`.versions` stores versions and runs the validation gate on them, :mod:`.seeding` makes
the city profile's files the first versions.
"""
