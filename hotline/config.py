"""Configuration: one TOML file, overridden by HOTLINE_<SECTION>_<KEY> variables.

Every setting has an embedded default so that `python run_hotline.py` runs on a
fresh checkout with no file at all.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass
class ServiceConfig:
    timezone: str = "Asia/Shanghai"
    var_dir: str = "var"
    routing_file: str = "config/routing.yml"
    calendar_file: str = "config/calendar-cn.yml"
    messages_file: str = "config/messages.yml"  # every word residents hear or read from the service
    incidents_file: str = "config/incidents.yml"  # incident detection rules and area words
    watch_words_file: str = "config/watch_words.yml"  # public-opinion watch (舆情)
    # development (the demo) or production: refuses demo passwords, turns on Secure cookies and HSTS.
    environment: str = "development"


@dataclasses.dataclass
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # Set when the service is behind HTTPS so session cookies get the Secure flag.
    secure_cookies: bool = False
    session_hours: int = 12
    # The address residents reach the service at, for links sent to them (survey links); default http://host:port.
    public_url: str = ""
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses or CIDR networks).
    # Empty: nobody's; a resident's address is the peer's.
    trusted_proxies: str = ""


@dataclasses.dataclass
class DatabaseConfig:
    # Empty means the embedded SQLite file var/hotline.db.
    url: str = ""
    echo: bool = False


@dataclasses.dataclass
class ApiConfig:
    # Bearer token for the bot's actions and other services; empty disables it.
    service_token: str = ""


@dataclasses.dataclass
class EscalationConfig:
    interval_seconds: float = 30.0
    enabled: bool = True


@dataclasses.dataclass
class CallbackConfig:
    """The callback (回访) after a resolution; its delay is the `callback` limit of config/routing.yml."""

    calling_hours: str = "08:00-21:00"  # Beijing time; no survey message or call outside them
    attempts: int = 3  # automatic attempts before the task goes to agents (回访任务)
    retry_hours: float = 2.0  # at least this long between attempts
    expire_working_days: int = 3  # unanswered by then: recorded as unreachable and the ticket closed
    interval_seconds: float = 30.0  # how often the scheduler looks for due tasks
    enabled: bool = True
    link_secret: str = ""  # signs survey links (WeChat template messages); empty: a key kept under var/
    link_valid_hours: int = 72
    answers_file: str = "config/survey_answers.yml"  # residents' words for 满意 / 基本满意 / 不满意


@dataclasses.dataclass
class SipConfig:
    host: str = "127.0.0.1"
    port: int = 5060
    enabled: bool = True
    flows_dir: str = "ivr_flows"
    flow: str = "main"  # the flow an incoming call starts in
    prompt_dir: str = "ivr_prompts"  # recorded <prompt id>.wav files that replace synthesized ones
    voice: str = "cmn"  # espeak-ng voice for synthesized prompts
    agent_uri: str = ""  # where "0" transfers to when agents are on duty, e.g. sip:queue@pbx.example
    public_host: str = ""  # the address peers reach us at (SDP, Contact); default: host
    rtp_port_min: int = 20000
    rtp_port_max: int = 30000
    ring_seconds: float = 0.5  # between 180 Ringing and the answer
    registrar: str = ""  # host:port to REGISTER with; empty: trunk mode (INVITEs come without registration)
    username: str = ""
    password: str = ""
    domain: str = ""  # the registration's domain (realm); default: the registrar's host
    register_expires: int = 300
    # Who may place calls in trunk mode: comma-separated addresses or networks (CIDR).
    # Empty: loopback and the registrar's address. Others get 403.
    allowed_peers: str = ""
    resolve_hostnames: bool = False  # Via/SDP host names: refused (false) or resolved once, off the event loop
    # Calls in setup (INVITE to ACK) from one address; more get 486. A trunk or PBX brings every caller
    # from its one address: size for the calls it may set up at once, not for one phone.
    max_setup_per_source: int = 100
    setup_slot_seconds: float = 4.0  # a call whose 200 is not ACKed stops counting in that limit after this


@dataclasses.dataclass
class OutboundConfig:
    """The outbound dialler (外呼): pyVoIP registered as an extension of the utility's PBX or SIP trunk.

    It places callback surveys for telephone tickets and outage notices; disabled until a registrar is set."""

    enabled: bool = False
    registrar: str = ""  # host:port of the PBX or trunk to REGISTER with (and send every request through)
    username: str = ""
    password: str = ""  # better: HOTLINE_OUTBOUND_PASSWORD in the environment
    domain: str = ""  # the domain in From/To and the Request-URI; default: the registrar's host:port
    caller_id: str = ""  # the display name / number residents see; default: username
    lines: int = 4  # calls at once
    calling_hours: str = "08:00-21:00"  # Beijing time; nothing is dialled outside them
    ring_seconds: float = 30.0  # unanswered by then: CANCEL, recorded as no answer and retried
    local_host: str = "127.0.0.1"  # our address in Via, Contact and SDP (reachable by the PBX)
    sip_port: int = 5070  # our UDP port for SIP (must differ from [sip] port)
    rtp_port_min: int = 30002
    rtp_port_max: int = 30999
    register_expires: int = 300
    interval_seconds: float = 5.0  # how often due calls are looked for


@dataclasses.dataclass
class BotConfig:
    # Empty URLs mean run_hotline.py starts the Rasa and action servers itself,
    # on these ports of 127.0.0.1.
    rasa_url: str = ""
    actions_url: str = ""
    rasa_port: int = 5005
    actions_port: int = 5055
    enabled: bool = True
    # The long limit: a bot slower than this (or failing) hands the conversation to people.
    timeout_seconds: float = 30.0
    concurrency: int = 8  # requests to Rasa at once; the rest wait in the queue
    queue_size: int = 200  # messages waiting for the bot; beyond it residents are asked to wait
    # The servers the service starts listen here; anything but loopback exposes them (tokens still apply).
    host: str = "127.0.0.1"
    # Rasa's HTTP API token (?token=). Empty: a random one per start, known only to the service.
    # Set it when rasa_url points at a Rasa server run elsewhere (hotline/rasa/runtime/rasa_server.py).
    rasa_token: str = ""
    start_timeout_seconds: float = 300.0  # a server not answering by then is killed and started again
    check_interval_seconds: float = 5.0  # how often the started servers must prove they are alive
    restart_backoff_max_seconds: float = 60.0  # restarts wait 1 s, 2 s, 4 s … up to this
    # Rasa servers started on rasa_port, rasa_port + 1 …; a conversation stays on one while it is up.
    # More than one needs shared stores: the service's database on PostgreSQL (Rasa's SQL tracker
    # store, schema `rasa`) and redis_url (Rasa's RedisLockStore); otherwise the start is refused.
    workers: int = 1
    redis_url: str = ""  # redis://[:password@]host[:port][/db]; rediss:// for TLS
    # With workers > 1: how long a worker's hold on one conversation lasts (Rasa's ticket lock). A
    # worker killed mid-message holds it this long, so the message's retry on another worker waits
    # as much; it must stay well under timeout_seconds.
    lock_lifetime_seconds: int = 10

    def check(self, database_url: str) -> None:
        """Refuse at start a bot setting that could not work, rather than find out with residents waiting.

        More Rasa servers without shared stores would lose a conversation's context whenever it
        moves to another server, and could answer two of its messages at once.
        """
        if self.workers < 1 or self.workers > 32:
            raise ConfigError(f"[bot] workers: expected 1 to 32, got {self.workers}")
        if self.workers == 1 or not self.enabled:
            return
        if self.rasa_url:
            raise ConfigError("[bot] workers applies to the Rasa servers the service starts; with rasa_url "
                              "set, run several Rasa servers behind that URL instead (or set workers = 1)")
        missing = []
        if not database_url.startswith("postgresql"):
            missing.append("[database] url on PostgreSQL (for the shared tracker store)")
        if not self.redis_url:
            missing.append("[bot] redis_url (for the shared lock store)")
        if missing:
            raise ConfigError(f"[bot] workers = {self.workers} needs " + " and ".join(missing)
                              + "; set them, or set workers = 1")
        if not self.redis_url.startswith(("redis://", "rediss://")):
            raise ConfigError(f"[bot] redis_url: expected redis://host:port/db, got {self.redis_url!r}")
        last = self.rasa_port + self.workers - 1
        if not self.actions_url and self.rasa_port <= self.actions_port <= last:
            raise ConfigError(f"[bot] actions_port {self.actions_port} is among the Rasa workers' ports "
                              f"{self.rasa_port}-{last}")
        if not 1 <= self.lock_lifetime_seconds < self.timeout_seconds:
            raise ConfigError("[bot] lock_lifetime_seconds: expected at least 1 and less than timeout_seconds "
                              f"({self.timeout_seconds:g}), got {self.lock_lifetime_seconds}")


@dataclasses.dataclass
class WechatConfig:
    token: str = ""
    app_id: str = ""
    app_secret: str = ""
    encoding_aes_key: str = ""
    api_base_url: str = "https://api.weixin.qq.com"
    # plaintext, compatible or safe; empty: safe once encoding_aes_key is set, else plaintext.
    mode: str = ""
    max_age_seconds: int = 300  # a push's timestamp must be this recent; its nonce is refused twice
    max_stored_chars: int = 20000  # longer texts are cut when stored (the bot sees at most 2,000)

    def effective_mode(self) -> str:
        """The mode in force, checked once at start so a typo cannot silently accept plaintext."""
        mode = self.mode.strip().lower() or ("safe" if self.encoding_aes_key else "plaintext")
        if mode not in WECHAT_MODES:
            raise ConfigError(f"[wechat] mode: expected one of {', '.join(WECHAT_MODES)}, got {self.mode!r}")
        if mode != "plaintext" and len(self.encoding_aes_key) != 43:
            raise ConfigError(f"[wechat] mode {mode} needs encoding_aes_key (the 43-character EncodingAESKey)"
                              if not self.encoding_aes_key else
                              "[wechat] encoding_aes_key: expected 43 characters")
        if self.max_age_seconds <= 0:
            raise ConfigError("[wechat] max_age_seconds: expected a positive number of seconds")
        if self.max_stored_chars < 100:
            raise ConfigError("[wechat] max_stored_chars: expected at least 100")
        return mode


WECHAT_MODES = ("plaintext", "compatible", "safe")


@dataclasses.dataclass
class MetricsConfig:
    """Who may read /metrics (Prometheus): these addresses or networks, or anyone with the bearer token."""

    enabled: bool = True
    allowed: str = "127.0.0.1,::1"  # comma-separated addresses or CIDR networks; empty: none
    token: str = ""  # bearer token; empty: addresses only
    sql_max_age_seconds: float = 10.0  # gauges counted by SQL (overdue tickets, queue) are reused this long


@dataclasses.dataclass
class PrivacyConfig:
    """What residents who have not proven to own an account (未核实) are told, and how often they may try."""

    # amount_due: a typed 户号 gets the masked name and the amount due; none: nothing without proof.
    anonymous_disclosure: str = "amount_due"
    # Different accounts an unverified resident may ask about in an hour (per web-chat client, address,
    # WeChat user and calling number); then a polite refusal.
    lookup_accounts_per_hour: int = 5
    # The same per network address (web chat): raise it where many residents share one address (a carrier's
    # NAT, an office), so that one resident's look-ups do not refuse their neighbours'.
    lookup_accounts_per_address_per_hour: int = 5
    proof_tries_per_resident_per_hour: int = 5  # wrong proofs (phone's last four digits, holder's name) by one resident
    proof_tries_per_account_per_hour: int = 5  # wrong proofs for one account, whoever gives them

    def check(self) -> None:
        if self.anonymous_disclosure not in ANONYMOUS_DISCLOSURES:
            raise ConfigError(f"[privacy] anonymous_disclosure: expected one of {', '.join(ANONYMOUS_DISCLOSURES)}, "
                              f"got {self.anonymous_disclosure!r}")
        for name in ("lookup_accounts_per_hour", "lookup_accounts_per_address_per_hour",
                     "proof_tries_per_resident_per_hour",
                     "proof_tries_per_account_per_hour"):
            if getattr(self, name) < 1:
                raise ConfigError(f"[privacy] {name}: expected at least 1")


ANONYMOUS_DISCLOSURES = ("amount_due", "none")


@dataclasses.dataclass
class RetentionConfig:
    """How long each kind of residents' personal data is kept (保存期限), in days; 0 keeps it for ever.

    A daily job (at `hour`, Beijing time) deletes or anonymizes what is due, in batches of `batch_size`
    rows, each its own short transaction; `run_hotline.py purge --dry-run` says what would go."""

    enabled: bool = True
    hour: int = 3  # local hour of the daily purge, when the hotline is quietest
    conversations_days: int = 180  # messages' text and the conversations' resident ids
    recordings_days: int = 90  # voicemail recordings (files deleted)
    call_numbers_days: int = 365  # calling numbers, keyed digits and accounts on call records
    tracker_days: int = 30  # Rasa's tracker events (the bot's memory of a conversation)
    nlu_feedback_days: int = 180  # agents' corrections, which quote residents' words
    read_audit_days: int = 1095  # who read whose data (等保 asks at least 6 months of logs)
    closed_tickets_days: int = 1095  # closed tickets' contact name, phone, address and description
    batch_size: int = 500  # rows per transaction: keeps each write short
    batch_target_ms: int = 50  # a batch whose write takes longer halves the next; quick ones double back

    KINDS = ("conversations", "recordings", "call_numbers", "tracker", "nlu_feedback", "read_audit",
             "closed_tickets")

    def days(self, kind: str) -> int:
        return int(getattr(self, f"{kind}_days"))

    def check(self) -> None:
        if not 0 <= self.hour <= 23:
            raise ConfigError(f"[retention] hour: expected 0 to 23, got {self.hour}")
        if self.batch_size < 1 or self.batch_target_ms < 1:
            raise ConfigError("[retention] batch_size and batch_target_ms: expected at least 1")
        for kind in self.KINDS:
            if self.days(kind) < 0:
                raise ConfigError(f"[retention] {kind}_days: expected 0 (keep) or more days")


@dataclasses.dataclass
class Config:
    service: ServiceConfig = dataclasses.field(default_factory=ServiceConfig)
    http: HttpConfig = dataclasses.field(default_factory=HttpConfig)
    database: DatabaseConfig = dataclasses.field(default_factory=DatabaseConfig)
    api: ApiConfig = dataclasses.field(default_factory=ApiConfig)
    escalation: EscalationConfig = dataclasses.field(default_factory=EscalationConfig)
    callback: CallbackConfig = dataclasses.field(default_factory=CallbackConfig)
    sip: SipConfig = dataclasses.field(default_factory=SipConfig)
    outbound: OutboundConfig = dataclasses.field(default_factory=OutboundConfig)
    bot: BotConfig = dataclasses.field(default_factory=BotConfig)
    wechat: WechatConfig = dataclasses.field(default_factory=WechatConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    privacy: PrivacyConfig = dataclasses.field(default_factory=PrivacyConfig)
    retention: RetentionConfig = dataclasses.field(default_factory=RetentionConfig)
    # The sections of channels that bring their own (a ChannelPlugin's `config`): name → its settings.
    channels: dict[str, typing.Any] = dataclasses.field(default_factory=dict)

    def path(self, relative: str) -> Path:
        """Resolve a configured path against the project root."""
        p = Path(relative)
        return p if p.is_absolute() else ROOT / p

    @property
    def public_url(self) -> str:
        return (self.http.public_url or f"http://{self.http.host}:{self.http.port}").rstrip("/")

    @property
    def var_dir(self) -> Path:
        return self.path(self.service.var_dir)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.var_dir / 'hotline.db'}"


class ConfigError(ValueError):
    pass


def _coerce(value: str, kind: type, name: str) -> typing.Any:
    if kind is bool:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    try:
        return kind(value)
    except ValueError as exc:
        raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}") from exc


def _section_types(section_cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def load_config(path: str | os.PathLike[str] | None = None,
                environ: typing.Mapping[str, str] | None = None) -> Config:
    """Build the configuration: defaults, then the file, then the environment."""
    environ = os.environ if environ is None else environ
    config = Config()
    file_path = Path(path) if path else ROOT / "hotline.toml"
    data: dict[str, typing.Any] = {}
    if path or file_path.exists():
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {file_path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file_path}: {exc}") from exc

    sections = _sections(config)
    for name in data:
        if name not in sections:
            raise ConfigError(f"unknown section [{name}] in {file_path}")
    for name, section in sections.items():
        types = _section_types(type(section))
        values = data.get(name, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{name}] must be a table")
        for key, value in values.items():
            if key not in types:
                raise ConfigError(f"unknown setting [{name}] {key}")
            kind = types[key]
            if kind is float and isinstance(value, int):
                value = float(value)
            if not isinstance(value, kind):
                raise ConfigError(f"[{name}] {key}: expected {kind.__name__}")
            setattr(section, key, value)
        for key, kind in types.items():
            env_name = f"HOTLINE_{name.upper()}_{key.upper()}"
            if env_name in environ:
                setattr(section, key, _coerce(environ[env_name], kind, env_name))
    from hotline.config_checks import check_config  # every value checked: a bad one stops the start, named
    check_config(config, sections, ROOT)
    return config


def _sections(config: Config) -> dict[str, typing.Any]:
    """Every section: the service's own, then those of channel plug-ins (added to `config.channels`)."""
    from hotline.channels import registry  # here: channel packages import this module
    sections = {f.name: getattr(config, f.name) for f in dataclasses.fields(Config) if f.name != "channels"}
    for name, section_cls in registry.config_sections().items():
        if name in sections:
            raise ConfigError(f"channel {name!r} brings a section that the service already has")
        sections[name] = config.channels.setdefault(name, section_cls())
    return sections


def describe_settings() -> str:
    """The list of settings and their variables, for --help."""
    lines = []
    for name, section in _sections(Config()).items():
        for key in _section_types(type(section)):
            env_name = f"HOTLINE_{name.upper()}_{key.upper()}"
            setting = f"[{name}] {key}"
            lines.append(f"  {setting:<28} {env_name:<38} {getattr(section, key)!r}")
    return "\n".join(lines)
