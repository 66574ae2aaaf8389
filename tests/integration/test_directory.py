"""The contact directory's indexes follow the contacts: inbound messages find people by them."""


def test_a_changed_chat_id_or_email_no_longer_finds_the_contact(engine):
    engine.import_contacts([{"email": "ann@example.com", "telegram_chat_id": "111", "slack_user_id": "U1"}])
    assert engine.store.contact_by("telegram_chat_id", "111").id == "ann@example.com"
    engine.import_contacts([{"id": "ann@example.com", "email": "Ann.B@example.com", "telegram_chat_id": "222"}])
    assert engine.store.contact_by("telegram_chat_id", "111") is None
    assert engine.store.contact_by("slack_user_id", "U1") is None
    assert engine.store.contact_by("telegram_chat_id", "222").id == "ann@example.com"
    assert engine.store.contact_by("email", "ann.b@example.com").id == "ann@example.com"
    assert engine.store.contact_by("email", "ann@example.com") is None
