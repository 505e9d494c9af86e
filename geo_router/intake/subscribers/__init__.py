"""The caller registry.

- :mod:`.models`: the registry's answers (``Subscriber``, ``CallerInfo``) and field checks;
- :mod:`.service`: ``SubscriberService`` (register, read, change, delete, "who is calling?");
- :mod:`.csv_import`: registering many callers from one CSV, all rows or none.
"""
