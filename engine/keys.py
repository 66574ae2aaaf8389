"""Every Redis key taskbot uses, in one place, so the layout is visible at a glance.

Layout (all under ``taskbot:``)::

    defs                      hash   task id -> definition JSON
    assistants                hash   assistant id -> JSON
    contacts                  hash   contact id -> JSON
    contacts:email            hash   lower-case email -> contact id
    contacts:slack            hash   Slack user id -> contact id
    contacts:telegram         hash   Telegram chat id -> contact id
    slack:{user|dm|info}:{id} string Slack adapter caches (lookupByEmail, DM channel, users.info; TTL)
    slack:rate:{method}       zset   times of a Web API method's recent calls (the adapter's limiter); `…:hold` while
                                     Slack's Retry-After lasts; `slack:rate:post:{channel}` per DM
    slack:directory:emails    hash   lower-case email -> Slack user id, the last complete users.list (TTL)
    slack:directory:{ready|staging|cursor|lock|due}  the member list's state: when it was read, the listing
                                     in progress and its cursor, who lists, when the next refresh is queued
    telegram:link:{token}     string a deep-link token (`/start <token>`) -> contact id; TTL 7 days, taken once
    telegram:update:{id}      string a Telegram update_id already taken as a command (/start, /task); TTL
    telegram:rate:bot         zset   times of the bot's sends in the last second (the adapter's sliding-window limiter)
    telegram:rate:chat:{id}   zset   the same for one chat; `…:hold` (string, TTL) while Telegram's retry_after lasts
    telegram:parts:{key}      hash   part number -> ref of a long message's parts already sent (TTL)
    telegram:blocked:{id}     string the person in this private chat blocked the bot (my_chat_member kicked)
    email:subject:{msgid}     string subject of an opening email, by its Message-ID (chases say Re: to it; TTL)
    email:poll:due            string exists until the next IMAP poll may be queued (TASKBOT_IMAP_POLL)
    email:poll:lock           string held by the one IMAP poll running (TTL, renewed per batch)
    dataset:{name}            string rows JSON
    runs                      zset   run id by created_at (newest first listing)
    runs:task:{task}          zset   the same, per task definition
    run:{rid}                 hash   run fields: status, step (workflow state index), gathered JSON, ...
    run:{rid}:definition      string the definition snapshot the run follows (immutable, cached)
    run:{rid}:subs            list   sub-task ids in fan-out order
    run:{rid}:open:{step}     int    sub-tasks of that state not yet final; DECR to 0 = fan-in
    run:{rid}:need:{step}     int    completed sub-tasks that make that state's quorum (absent: no quorum)
    run:{rid}:done:{step}     int    completed sub-tasks of that state, counted when it has a quorum
    run:{rid}:closed:{step}   string why that state closed, set once (the one fan-in): all | quorum | deadline
    run:{rid}:late            list   sub-tasks completed late after fan-in, oldest first, each waiting for its version
    run:{rid}:reports         hash   "<version>:<report_to index>" -> JSON {target, version, status, attempts, ...}
    run:{rid}:deliverables    list   deliverable ids
    run:{rid}:notified        set    owner notifications sent, as kind:channel (each once)
    deliverable:{did}         hash
    deliverable:{did}:file    string the bytes of an image or file deliverable
    run:{rid}:saved           list   content an assistant saved with `save_content`, JSON {id, title, content}
    run:{rid}:usage           hash   tokens the run's model calls used: prompt, completion, calls
    usage                     hash   the same, all runs together (since the store began)
    slots                     zset   turn slot holder (lease member) -> expiry (heartbeat pushes it on)
    slots:tokens              hash   holder -> token of the job holding it
    slots:meta                hash   holder or waiter -> "assistant|per-assistant limit|conversation"
    slots:waiting             zset   waiter -> arrival number (FIFO)
    slots:waiting:ttl         zset   waiter -> when it is dropped unless it asks again
    slots:woken               zset   waiter -> when it was last woken (not woken twice at once)
    slots:seq                 int    arrival counter
    sub:{sid}                 hash   sub-task fields, `data` JSON, `data_history` JSON (replaced answers),
                                     `cursor` (field being asked), `token`, `tz` and `hours` (the participant's,
                                     as resolved when opened or chased), `open_at` (a held opening's time)
    sub:{sid}:conv            list   conversation messages JSON {role, text, at, ...}
    sub:{sid}:sent            set    keys of outbound messages already delivered (dropped when it ends)
    token:{token}             string a sub-task's reply token (web chat link, email plus-address) -> sub-task id
    claim:{sid}:{key}         string short-lived claim on sending one outbound message (at most one sender)
    thread:{channel}:{ref}    string ref of a message the bot sent (thread ts, message id), or of a person's
                                     message that gave an answer (so its edit finds it) -> sub-task id
    active:{channel}:{addr}   zset   a participant's open sub-tasks on a channel by last activity
    inbound:{iid}             hash   a stored inbound message (kept until fully processed)
    inbox:{qid}               list   a sender's stored messages on one channel, oldest first, until processed
                                     (qid: digest of channel and sender); applied strictly in this order
    inbox:{qid}:lock          string token of the one worker draining that inbox (TTL, renewed per message)
    seen:{channel}:{pid}      string provider message id -> inbound id (duplicate deliveries)
    leases                    zset   work item -> deadline; overdue items are re-driven by the sweeper
    redrives                  hash   work item -> times the sweeper re-drove it
    dead                      hash   work item -> when it was given up after too many re-drives
    timers                    zset   sub-task id -> when its next chase check, or its held opening, is due
                                     (or its lease ends)
    deadlines                 zset   "<rid>:<step>" -> when that fan-out closes (or, once taken, its lease ends)
    notifications:{owner}     list   in-app notifications JSON, newest last
    schedules                 hash   schedule id -> JSON {task_id, cron, timezone, data, enabled}
    schedules:due             zset   schedule id by next run time (a disabled schedule keeps its place)
    tokens                    hash   people's token prefix (8 hex) -> JSON {prefix, contact_id, sha256, created_at};
                                     the token itself is never stored
    tokens:used               hash   token prefix -> when it last opened something
    events                    list   run and sub-task events waiting for webhook delivery (only
                                     when webhooks are configured)
    idempotency:{digest}      string run id started for an Idempotency-Key (SHA-256 of the key); TTL 1 day
"""

from __future__ import annotations

PREFIX = "taskbot:"

DEFS = PREFIX + "defs"
ASSISTANTS = PREFIX + "assistants"
CONTACTS = PREFIX + "contacts"
CONTACTS_BY_EMAIL = PREFIX + "contacts:email"
#: Contact fields with an index, by the index key: inbound messages name people by these.
CONTACT_INDEXES = {"email": CONTACTS_BY_EMAIL, "slack_user_id": PREFIX + "contacts:slack",
                   "telegram_chat_id": PREFIX + "contacts:telegram"}
RUNS = PREFIX + "runs"
LEASES = PREFIX + "leases"
TIMERS = PREFIX + "timers"
DEADLINES = PREFIX + "deadlines"
REDRIVES = PREFIX + "redrives"
DEAD = PREFIX + "dead"
SCHEDULES = PREFIX + "schedules"
SCHEDULES_DUE = PREFIX + "schedules:due"
TOKENS = PREFIX + "tokens"
TOKENS_USED = PREFIX + "tokens:used"
EVENTS = PREFIX + "events"


def dataset(name: str) -> str:
    return f"{PREFIX}dataset:{name}"


def runs_of_task(task_id: str) -> str:
    return f"{PREFIX}runs:task:{task_id}"


def run(rid: str) -> str:
    return f"{PREFIX}run:{rid}"


def run_definition(rid: str) -> str:
    return f"{PREFIX}run:{rid}:definition"


def run_subs(rid: str) -> str:
    return f"{PREFIX}run:{rid}:subs"


def run_open(rid: str, step: int) -> str:
    return f"{PREFIX}run:{rid}:open:{step}"


def run_need(rid: str, step: int) -> str:
    return f"{PREFIX}run:{rid}:need:{step}"


def run_done(rid: str, step: int) -> str:
    return f"{PREFIX}run:{rid}:done:{step}"


def run_closed(rid: str, step: int) -> str:
    return f"{PREFIX}run:{rid}:closed:{step}"


def run_late(rid: str) -> str:
    return f"{PREFIX}run:{rid}:late"


def run_reports(rid: str) -> str:
    return f"{PREFIX}run:{rid}:reports"


def run_notified(rid: str) -> str:
    return f"{PREFIX}run:{rid}:notified"


def run_deliverables(rid: str) -> str:
    return f"{PREFIX}run:{rid}:deliverables"


def deliverable(did: str) -> str:
    return f"{PREFIX}deliverable:{did}"


def deliverable_file(did: str) -> str:
    return f"{PREFIX}deliverable:{did}:file"


def run_saved(rid: str) -> str:
    return f"{PREFIX}run:{rid}:saved"


def run_usage(rid: str) -> str:
    return f"{PREFIX}run:{rid}:usage"


USAGE = PREFIX + "usage"
SLOTS = PREFIX + "slots"
SLOTS_TOKENS = PREFIX + "slots:tokens"
SLOTS_META = PREFIX + "slots:meta"
SLOTS_WAITING = PREFIX + "slots:waiting"
SLOTS_WAITING_TTL = PREFIX + "slots:waiting:ttl"
SLOTS_WOKEN = PREFIX + "slots:woken"
SLOTS_SEQ = PREFIX + "slots:seq"


def sub(sid: str) -> str:
    return f"{PREFIX}sub:{sid}"


def sub_conv(sid: str) -> str:
    return f"{PREFIX}sub:{sid}:conv"


def sub_sent(sid: str) -> str:
    return f"{PREFIX}sub:{sid}:sent"


def token(tok: str) -> str:
    return f"{PREFIX}token:{tok}"


def claim(sid: str, key: str) -> str:
    return f"{PREFIX}claim:{sid}:{key}"


def thread(channel: str, ref: str) -> str:
    return f"{PREFIX}thread:{channel}:{ref}"


ACTIVE_PREFIX = PREFIX + "active:"


def active(channel: str, address: str) -> str:
    return f"{ACTIVE_PREFIX}{channel}:{address}"


def inbound(iid: str) -> str:
    return f"{PREFIX}inbound:{iid}"


def inbox(qid: str) -> str:
    return f"{PREFIX}inbox:{qid}"


def inbox_lock(qid: str) -> str:
    return f"{PREFIX}inbox:{qid}:lock"


def seen(channel: str, provider_id: str) -> str:
    return f"{PREFIX}seen:{channel}:{provider_id}"


def notifications(owner: str) -> str:
    return f"{PREFIX}notifications:{owner}"


TELEGRAM_RATE_BOT = PREFIX + "telegram:rate:bot"


def telegram_link(token: str) -> str:
    return f"{PREFIX}telegram:link:{token}"


def telegram_update(update_id: str) -> str:
    return f"{PREFIX}telegram:update:{update_id}"


def telegram_rate_chat(chat_id: str) -> str:
    return f"{PREFIX}telegram:rate:chat:{chat_id}"


def telegram_blocked(chat_id: str) -> str:
    return f"{PREFIX}telegram:blocked:{chat_id}"


def telegram_parts(key: str) -> str:
    return f"{PREFIX}telegram:parts:{key}"


def idempotency(digest: str) -> str:
    return f"{PREFIX}idempotency:{digest}"
