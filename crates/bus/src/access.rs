//! Who may do what on NATS: the one permission table of the chain's bus.
//!
//! Every process that connects to NATS is a user of one [`Role`]: each validator is its own
//! user, each platform service (ledger, licence, tokens) one user shared by its replicas, and the
//! operator (the development supervisor, the benchmark, test harnesses, an administrator) a user
//! with every permission. [`permissions`] says, for a role on one chain's streams, which
//! subjects it may publish to and subscribe on, JetStream API calls included:
//!
//! * only validators append to CHAIN, create or change the three streams, and talk on the
//!   consensus subjects;
//! * a service publishes events only under its own name (`events.<service>.*`): the token
//!   service's verdicts cannot come from the licence service, nor the other way round;
//! * the ledger and the licence service submit to MEMPOOL; the licence service alone owns its
//!   object store and key buckets;
//! * replies come back on an inbox named after the user (`_INBOX_<user>.>`), so no user reads
//!   another's replies;
//! * a durable consumer belongs to the user that keeps it ([`Grants::durables`]): every other
//!   user that reads its stream is denied pulling from it, acknowledging its deliveries,
//!   looking it up, reconfiguring and deleting it ([`DURABLE_CALLS`]), so a service cannot
//!   drain or remove a validator's MEMPOOL consumer, nor one validator another's.
//!
//! Ordered consumers (how every role follows CHAIN, and the ledger MEMPOOL) have names the
//! client makes up, so they cannot be told apart from each other by subject: a reader could
//! disturb another's, which then recreates itself from the last sequence it saw. Nothing is
//! acknowledged through them, so nothing is lost that way.
//!
//! [`server_config`] renders the `authorization` block of a nats-server configuration from a
//! list of [`User`]s (nkey public keys and roles), [`nats_chart_values`] the same users as
//! values for the official NATS Helm chart, and [`new_user`] makes a user with a fresh nkey;
//! [`markdown_table`] renders the table the operations guide shows, and a test keeps the two
//! in step. A server with users refuses any
//! connection that does not prove one of their nkeys.

use std::fmt::Write as _;

use crate::streams::{StreamKind, StreamsConfig};

/// The object store bucket of sealed record payloads, owned by the licence service.
pub const LICENCE_OBJECT_BUCKET: &str = "licence-records";

/// The key-value bucket of wrapped record keys, owned by the licence service.
pub const LICENCE_KEY_BUCKET: &str = "licence-keys";

/// What a NATS user is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A validator: orders MEMPOOL into blocks and appends them to CHAIN.
    Validator,
    /// The ledger: follows CHAIN, submits transactions, watches MEMPOOL.
    Ledger,
    /// The licence service: follows CHAIN, acts on the token service's verdicts, keeps sealed
    /// payloads and wrapped keys in its own buckets.
    Licence,
    /// The token service: follows CHAIN and publishes its verdicts on EVENTS.
    Tokens,
    /// Everything: creates streams for tests and tools, inspects and repairs.
    Operator,
}

impl Role {
    /// Every role, in the order tables list them.
    pub const ALL: [Role; 5] = [
        Role::Validator,
        Role::Ledger,
        Role::Licence,
        Role::Tokens,
        Role::Operator,
    ];

    /// The role's name, as user names and tables show it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Validator => "validator",
            Role::Ledger => "ledger",
            Role::Licence => "licence",
            Role::Tokens => "tokens",
            Role::Operator => "operator",
        }
    }

    /// The role a platform service's name stands for (`ledger`, `licence`, `tokens`).
    pub fn of_service(name: &str) -> Option<Role> {
        match name {
            "ledger" => Some(Role::Ledger),
            "licence" => Some(Role::Licence),
            "tokens" => Some(Role::Tokens),
            _ => None,
        }
    }
}

/// The subjects one user may publish to and subscribe on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    /// Subjects it may publish to (NATS wildcards allowed).
    pub publish: Vec<String>,
    /// Subjects it may subscribe on.
    pub subscribe: Vec<String>,
    /// Subjects it may not publish to even where `publish` allows them: other users'
    /// durable consumers.
    pub deny_publish: Vec<String>,
    /// Whether it may answer requests it received (one reply each, on their reply subjects).
    pub responds: bool,
}

/// The JetStream calls that reading a stream takes (`{stream}` stands for its name): its
/// state, single messages, consumers of it (durable and ordered) with their acknowledgements
/// and flow control.
const READ_CALLS: [&str; 14] = [
    "$JS.API.STREAM.INFO.{stream}",
    "$JS.API.STREAM.MSG.GET.{stream}",
    "$JS.API.DIRECT.GET.{stream}",
    "$JS.API.DIRECT.GET.{stream}.>",
    "$JS.API.CONSUMER.CREATE.{stream}",
    "$JS.API.CONSUMER.CREATE.{stream}.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>",
    "$JS.API.CONSUMER.INFO.{stream}.>",
    "$JS.API.CONSUMER.MSG.NEXT.{stream}.>",
    "$JS.API.CONSUMER.DELETE.{stream}.>",
    "$JS.API.CONSUMER.NAMES.{stream}",
    "$JS.API.CONSUMER.LIST.{stream}",
    "$JS.ACK.{stream}.>",
    "$JS.FC.{stream}.>",
];

/// The JetStream calls on one durable consumer (`{name}`, of stream `{stream}`) that only the
/// user keeping it may make: creating or reconfiguring it (with or without a filter in the
/// subject), looking it up, pulling from it, deleting it, acknowledging its deliveries and
/// answering its flow control.
pub const DURABLE_CALLS: [&str; 8] = [
    "$JS.API.CONSUMER.CREATE.{stream}.{name}",
    "$JS.API.CONSUMER.CREATE.{stream}.{name}.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{name}",
    "$JS.API.CONSUMER.INFO.{stream}.{name}",
    "$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}",
    "$JS.API.CONSUMER.DELETE.{stream}.{name}",
    "$JS.ACK.{stream}.{name}.>",
    "$JS.FC.{stream}.{name}.>",
];

/// A durable consumer a user keeps on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable {
    /// The stream it reads.
    pub stream: String,
    /// Its name, or `None` when the service's configuration names it (the licence service's
    /// `payments_consumer`, one per store). An unnamed durable cannot be denied to others by
    /// name, so no other role may read its stream (a test of the table holds it to that).
    pub name: Option<String>,
}

/// The JetStream calls that creating a stream or changing its configuration takes.
const MANAGE_CALLS: [&str; 2] = [
    "$JS.API.STREAM.CREATE.{stream}",
    "$JS.API.STREAM.UPDATE.{stream}",
];

/// What a user may do, as the table says it: streams it manages and reads, subjects it
/// publishes to and subscribes on. [`Grants::permissions`] spells it out as NATS subjects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grants {
    /// Streams whose configuration and state it may look up (every chain stream: a service
    /// waits until the validators have created them).
    pub inspects: Vec<String>,
    /// Streams it may create and reconfigure.
    pub manages: Vec<String>,
    /// Streams it may read (see [`READ_CALLS`]).
    pub reads: Vec<String>,
    /// Subjects it may publish to.
    pub publishes: Vec<String>,
    /// Subjects it may subscribe on.
    pub subscribes: Vec<String>,
    /// Durable consumers it keeps; only it may use them.
    pub durables: Vec<Durable>,
    /// Whether it may answer the requests it receives.
    pub responds: bool,
}

impl Grants {
    /// The NATS permissions these grants take.
    pub fn permissions(&self) -> Permissions {
        let calls = |templates: &[&str], streams: &[String]| -> Vec<String> {
            streams
                .iter()
                .flat_map(|stream| {
                    templates
                        .iter()
                        .map(move |call| call.replace("{stream}", stream))
                })
                .collect()
        };
        let mut publish = Vec::new();
        if !self.reads.is_empty() {
            publish.push("$JS.API.INFO".to_owned());
        }
        publish.extend(calls(&[READ_CALLS[0]], &self.inspects));
        publish.extend(calls(&MANAGE_CALLS, &self.manages));
        publish.extend(calls(&READ_CALLS, &self.reads));
        publish.extend(self.publishes.iter().cloned());
        // Each subject once, in the order first given.
        let mut seen = std::collections::BTreeSet::new();
        publish.retain(|subject| seen.insert(subject.clone()));
        Permissions {
            publish,
            subscribe: self.subscribes.clone(),
            deny_publish: Vec::new(),
            responds: self.responds,
        }
    }
}

/// The name of the durable consumer that user `user` keeps: its name with each `.` (which
/// consumer names may not hold) as `~` (which user and member names never hold).
fn durable_name(user: &str) -> String {
    user.replace('.', "~")
}

/// The name of the MEMPOOL consumer of the validator run by `member`.
pub fn validator_durable(member: &str) -> String {
    durable_name(&validator_user(member))
}

/// The user's inbox prefix: replies to its requests arrive under `<prefix>.>`, and only it may
/// subscribe there.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// The operator's permissions: every subject, on every chain of the server.
pub fn operator_permissions() -> Permissions {
    operator_grants().permissions()
}

fn operator_grants() -> Grants {
    Grants {
        publishes: vec![">".to_owned()],
        subscribes: vec![">".to_owned()],
        responds: true,
        ..Grants::default()
    }
}

/// The permissions of each of a chain's `users` (names and roles) on its `streams`, in the
/// order given: what [`grants`] allows, less the durable consumers of the other users on the
/// streams it reads ([`DURABLE_CALLS`]). Give every user of the chain at once: a user left
/// out has its durables denied to nobody.
pub fn chain_permissions(users: &[(String, Role)], streams: &StreamsConfig) -> Vec<Permissions> {
    let all: Vec<Grants> = users
        .iter()
        .map(|(name, role)| grants(*role, name, streams))
        .collect();
    all.iter()
        .enumerate()
        .map(|(me, mine)| {
            let mut permissions = mine.permissions();
            for (other, theirs) in all.iter().enumerate() {
                if other == me {
                    continue;
                }
                for durable in &theirs.durables {
                    let Some(name) = &durable.name else { continue };
                    if !mine.reads.contains(&durable.stream) {
                        continue;
                    }
                    permissions
                        .deny_publish
                        .extend(DURABLE_CALLS.iter().map(|call| {
                            call.replace("{stream}", &durable.stream)
                                .replace("{name}", name)
                        }));
                }
            }
            permissions
        })
        .collect()
}

/// What `role` may do as user `user` on the chain whose streams are `streams`: the table.
pub fn grants(role: Role, user: &str, streams: &StreamsConfig) -> Grants {
    if role == Role::Operator {
        return operator_grants();
    }
    let mempool = streams.stream_name(StreamKind::Mempool);
    let chain = streams.stream_name(StreamKind::Chain);
    let events = streams.stream_name(StreamKind::Events);
    let chain_prefix = streams.chain_subject_prefix();
    // Every role follows CHAIN: live blocks, and the block service to repair a gap.
    let mut g = Grants {
        inspects: vec![mempool.clone(), chain.clone(), events.clone()],
        reads: vec![chain.clone()],
        publishes: vec![streams.block_service_subject("*")],
        subscribes: vec![format!("{}.>", inbox_prefix(user)), streams.chain_subject()],
        ..Grants::default()
    };
    match role {
        Role::Validator => {
            g.manages = vec![mempool.clone(), chain, events];
            g.reads.push(mempool.clone());
            g.durables.push(Durable {
                stream: mempool,
                name: Some(durable_name(user)),
            });
            g.publishes.extend([
                streams.chain_subject(),
                format!("{chain_prefix}.consensus.>"),
                streams.service_events("consensus").expect("a valid token"),
            ]);
            g.subscribes.extend([
                format!("{chain_prefix}.consensus.>"),
                streams.block_service_subject("*"),
            ]);
            g.responds = true;
        }
        Role::Ledger => {
            g.reads.push(mempool);
            g.publishes.push(streams.mempool_subject());
        }
        Role::Licence => {
            g.reads.push(events.clone());
            g.durables.push(Durable {
                stream: events,
                name: None,
            });
            g.publishes.push(streams.mempool_subject());
            let objects = streams
                .object_bucket(LICENCE_OBJECT_BUCKET)
                .expect("a valid token");
            let keys = streams
                .kv_bucket(LICENCE_KEY_BUCKET)
                .expect("a valid token");
            for (stream, subjects) in [
                (format!("OBJ_{objects}"), format!("$O.{objects}.>")),
                (format!("KV_{keys}"), format!("$KV.{keys}.>")),
            ] {
                g.manages.push(stream.clone());
                // Replacing an object purges its old chunks.
                if stream.starts_with("OBJ_") {
                    g.publishes.push(format!("$JS.API.STREAM.PURGE.{stream}"));
                }
                g.reads.push(stream);
                g.publishes.push(subjects.clone());
                g.subscribes.push(subjects);
            }
        }
        Role::Tokens => {
            // It publishes its verdicts and reads none: nothing of EVENTS but its state.
            g.publishes
                .push(streams.service_events("tokens").expect("a valid token"));
        }
        Role::Operator => unreachable!("handled above"),
    }
    g
}

/// One NATS user: its name (for its inbox, its client name and tables), its nkey's public key
/// (`U...`), what it is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's name, e.g. `validator-dept.tax` or `ledger`.
    pub name: String,
    /// The public half of the user's nkey.
    pub nkey: String,
    /// The role's name, or what a hand-made user is for.
    pub role: String,
    /// What it may do.
    pub permissions: Permissions,
}

/// A user with a fresh nkey, and the seed that proves it (`SU...`, a secret: whoever holds it
/// is that user).
pub fn new_user(name: &str, role: &str, permissions: Permissions) -> (User, String) {
    let key = nkeys::KeyPair::new_user();
    let seed = key.seed().expect("a generated key has its seed");
    let user = User {
        name: name.to_owned(),
        nkey: key.public_key(),
        role: role.to_owned(),
        permissions,
    };
    (user, seed)
}

/// The user name of the validator run by `member`.
pub fn validator_user(member: &str) -> String {
    format!("validator-{member}")
}

/// The users a chain's bus has: one per validator (named by [`validator_user`]) and one per
/// platform service, each with its role.
pub fn chain_users<'a>(validators: impl IntoIterator<Item = &'a str>) -> Vec<(String, Role)> {
    validators
        .into_iter()
        .map(|member| (validator_user(member), Role::Validator))
        .chain(
            [Role::Ledger, Role::Licence, Role::Tokens].map(|role| (role.name().to_owned(), role)),
        )
        .collect()
}

/// The `authorization` block of a nats-server configuration for `users`. With it the server
/// refuses connections that prove none of the users' nkeys.
pub fn server_config(users: &[User]) -> String {
    let list = |subjects: &[String]| {
        subjects
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = String::from("authorization {\n  users = [\n");
    for user in users {
        let p = &user.permissions;
        let deny = if p.deny_publish.is_empty() {
            String::new()
        } else {
            format!(", deny: [{}]", list(&p.deny_publish))
        };
        let _ = writeln!(
            out,
            "    # {name} ({role})\n    {{ nkey: {nkey:?}, permissions: {{ publish: {{ allow: [{publish}]{deny} }}, \
             subscribe: {{ allow: [{subscribe}] }}{responses} }} }}",
            name = user.name,
            role = user.role,
            nkey = user.nkey,
            publish = list(&p.publish),
            subscribe = list(&p.subscribe),
            responses = if p.responds {
                ", allow_responses: true"
            } else {
                ""
            },
        );
    }
    out.push_str("  ]\n}\n");
    out
}

/// Values for the official NATS Helm chart (nats-io's chart `nats`) that give its
/// servers exactly the users of [`server_config`]: the chart merges `config.merge` into
/// `nats.conf`, so `config.merge.authorization` becomes the server's `authorization` block.
pub fn nats_chart_values(users: &[User]) -> String {
    let list = |out: &mut String, indent: &str, subjects: &[String]| {
        if subjects.is_empty() {
            out.push_str(" []\n");
        }
        for subject in subjects {
            let _ = write!(out, "\n{indent}- {subject:?}");
        }
        if !subjects.is_empty() {
            out.push('\n');
        }
    };
    let mut out = String::from("config:\n  merge:\n    authorization:\n      users:\n");
    for user in users {
        let p = &user.permissions;
        let _ = writeln!(
            out,
            "        # {} ({})\n        - nkey: {:?}\n          permissions:",
            user.name, user.role, user.nkey
        );
        for (kind, subjects) in [("publish", &p.publish), ("subscribe", &p.subscribe)] {
            let _ = write!(out, "            {kind}:\n              allow:");
            list(&mut out, "                ", subjects);
            if kind == "publish" && !p.deny_publish.is_empty() {
                out.push_str("              deny:");
                list(&mut out, "                ", &p.deny_publish);
            }
        }
        if p.responds {
            out.push_str("            allow_responses: true\n");
        }
    }
    out
}

/// The permission table as Markdown, one row per role, for `streams`' chain, followed by the
/// JetStream calls that managing and reading a stream take. The operations guide shows it for
/// the chain id `city-main`.
pub fn markdown_table(streams: &StreamsConfig) -> String {
    let cell = |list: &[String]| {
        if list.is_empty() {
            "-".to_owned()
        } else {
            list.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join("<br>")
        }
    };
    let mut out = String::from(
        "| role (user) | looks up streams | manages streams | reads streams | keeps durables | publishes | subscribes | answers requests |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for role in Role::ALL {
        let user = match role {
            Role::Validator => validator_user("<member>"),
            other => other.name().to_owned(),
        };
        let g = grants(role, &user, streams);
        let durables = if g.durables.is_empty() {
            "-".to_owned()
        } else {
            g.durables
                .iter()
                .map(|d| match &d.name {
                    Some(name) => format!("`{name}` on `{}`", d.stream),
                    None => format!("one on `{}`, named in its configuration", d.stream),
                })
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = writeln!(
            out,
            "| `{}` (`{user}`) | {} | {} | {} | {} | {} | {} | {} |",
            role.name(),
            cell(&g.inspects),
            cell(&g.manages),
            cell(&g.reads),
            durables,
            cell(&g.publishes),
            cell(&g.subscribes),
            if g.responds { "yes" } else { "no" },
        );
    }
    let list = |calls: &[&str]| {
        calls
            .iter()
            .map(|c| {
                let call = c
                    .replace("{stream}", "<stream>")
                    .replace("{name}", "<durable>");
                format!("`{call}`")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        out,
        "\nLooking a stream up is {}. Managing one is {}. Reading one is {}; a user that reads \
         any stream may also call `$JS.API.INFO`. A durable's name is its keeper's user name \
         with each `.` as `~`; every other user reading its stream is denied {}.",
        list(&[READ_CALLS[0]]),
        list(&MANAGE_CALLS),
        list(&READ_CALLS),
        list(&DURABLE_CALLS)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams() -> StreamsConfig {
        StreamsConfig::new("city-main").unwrap()
    }

    /// The users of a chain with two validators, each with its permissions.
    fn table() -> Vec<(String, Role, Permissions)> {
        let users = chain_users(["dept.tax", "dept.health"]);
        let permissions = chain_permissions(&users, &streams());
        users
            .into_iter()
            .zip(permissions)
            .map(|((name, role), p)| (name, role, p))
            .collect()
    }

    fn permissions_of(user: &str) -> Permissions {
        table()
            .into_iter()
            .find(|(name, _, _)| name == user)
            .map(|(_, _, p)| p)
            .expect("a user of the table")
    }

    /// Whether `user` (a validator's user name, or a service's) may publish on `subject`.
    fn user_may_publish(user: &str, subject: &str) -> bool {
        let p = permissions_of(user);
        p.publish.iter().any(|pattern| matches(pattern, subject))
            && !p
                .deny_publish
                .iter()
                .any(|pattern| matches(pattern, subject))
    }

    fn may_publish(role: Role, subject: &str) -> bool {
        let user = match role {
            Role::Validator => validator_user("dept.tax"),
            other => other.name().to_owned(),
        };
        user_may_publish(&user, subject)
    }

    /// NATS subject matching: `*` one token, `>` the rest.
    fn matches(pattern: &str, subject: &str) -> bool {
        let mut subject_tokens = subject.split('.');
        for token in pattern.split('.') {
            match (token, subject_tokens.next()) {
                (">", Some(_)) => return true,
                ("*", Some(_)) => {}
                (expected, Some(actual)) if expected == actual => {}
                _ => return false,
            }
        }
        subject_tokens.next().is_none()
    }

    #[test]
    fn only_validators_append_to_chain_or_change_streams() {
        let s = streams();
        let chain = s.chain_subject();
        let update = format!("$JS.API.STREAM.UPDATE.{}", s.stream_name(StreamKind::Chain));
        for role in [Role::Ledger, Role::Licence, Role::Tokens] {
            assert!(!may_publish(role, &chain), "{role:?}");
            assert!(!may_publish(role, &update), "{role:?}");
        }
        assert!(may_publish(Role::Validator, &chain));
        assert!(may_publish(Role::Validator, &update));
    }

    #[test]
    fn a_service_publishes_events_only_under_its_own_name() {
        let s = streams();
        let paid = s.event_subject("tokens", "ReadPaid").unwrap();
        assert!(may_publish(Role::Tokens, &paid));
        for role in [Role::Ledger, Role::Licence, Role::Validator] {
            assert!(!may_publish(role, &paid), "{role:?}");
        }
        let licence_event = s.event_subject("licence", "X").unwrap();
        assert!(!may_publish(Role::Tokens, &licence_event));
    }

    #[test]
    fn inboxes_are_private() {
        let p = permissions_of("ledger");
        assert_eq!(
            p.subscribe
                .iter()
                .filter(|s| s.starts_with("_INBOX"))
                .collect::<Vec<_>>(),
            ["_INBOX_ledger.>"]
        );
    }

    #[test]
    fn server_config_lists_each_user_with_its_permissions() {
        let users = [User {
            name: "tokens".to_owned(),
            nkey: "UTOKENS".to_owned(),
            role: "tokens".to_owned(),
            permissions: permissions_of("tokens"),
        }];
        let text = server_config(&users);
        assert!(text.contains("nkey: \"UTOKENS\""), "{text}");
        assert!(
            text.contains("\"citychain.city-main.events.tokens.*\""),
            "{text}"
        );
        assert!(!text.contains("allow_responses"), "{text}");
    }

    #[test]
    fn server_config_denies_each_user_the_durables_of_others() {
        let users: Vec<User> = table()
            .into_iter()
            .map(|(name, role, p)| new_user(&name, role.name(), p).0)
            .collect();
        let text = server_config(&users);
        // A user's entry is the line after the comment naming it.
        let entry = |user: &str| {
            text.lines()
                .skip_while(|line| !line.contains(&format!("# {user} (")))
                .nth(1)
                .unwrap_or_else(|| panic!("no entry for {user}:\n{text}"))
        };
        let ledger = entry("ledger");
        assert!(
            ledger.contains(
                "deny: [\"$JS.API.CONSUMER.CREATE.CITYCHAIN_city-main_MEMPOOL.validator-dept~tax\""
            ),
            "{ledger}"
        );
        let tokens = entry("tokens");
        assert!(
            !tokens.contains("deny"),
            "it reads no stream with durables: {tokens}"
        );
    }

    #[test]
    fn chart_values_hold_each_users_key_and_permissions() {
        let users: Vec<User> = table()
            .into_iter()
            .map(|(name, role, p)| new_user(&name, role.name(), p).0)
            .collect();
        let values: serde_yaml::Value =
            serde_yaml::from_str(&nats_chart_values(&users)).expect("valid YAML");
        let listed = values["config"]["merge"]["authorization"]["users"]
            .as_sequence()
            .expect("a list of users");
        assert_eq!(listed.len(), users.len());
        let strings = |value: &serde_yaml::Value| -> Vec<String> {
            value
                .as_sequence()
                .expect("a list")
                .iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        };
        for (entry, user) in listed.iter().zip(&users) {
            assert_eq!(entry["nkey"].as_str(), Some(user.nkey.as_str()));
            let p = &entry["permissions"];
            assert_eq!(strings(&p["publish"]["allow"]), user.permissions.publish);
            if user.permissions.deny_publish.is_empty() {
                assert!(p["publish"]["deny"].is_null(), "{}", user.name);
            } else {
                assert_eq!(
                    strings(&p["publish"]["deny"]),
                    user.permissions.deny_publish
                );
            }
            assert_eq!(
                strings(&p["subscribe"]["allow"]),
                user.permissions.subscribe
            );
            assert_eq!(
                p["allow_responses"].as_bool().unwrap_or(false),
                user.permissions.responds,
                "{}",
                user.name
            );
        }
    }

    #[test]
    fn only_its_keeper_uses_a_durable() {
        let s = streams();
        let mempool = s.stream_name(StreamKind::Mempool);
        let tax = validator_durable("dept.tax");
        assert_eq!(tax, "validator-dept~tax");
        let calls = |durable: &str| -> Vec<String> {
            [
                format!("$JS.API.CONSUMER.MSG.NEXT.{mempool}.{durable}"),
                format!("$JS.API.CONSUMER.DELETE.{mempool}.{durable}"),
                format!("$JS.API.CONSUMER.INFO.{mempool}.{durable}"),
                format!("$JS.API.CONSUMER.DURABLE.CREATE.{mempool}.{durable}"),
                format!("$JS.API.CONSUMER.CREATE.{mempool}.{durable}.citychain.city-main.mempool"),
                format!("$JS.ACK.{mempool}.{durable}.1.7.7.1700000000.0"),
            ]
            .into()
        };
        let keeper = validator_user("dept.tax");
        let other = validator_user("dept.health");
        for call in calls(&tax) {
            assert!(user_may_publish(&keeper, &call), "{call}");
            assert!(!user_may_publish(&other, &call), "{call}");
            assert!(!user_may_publish("ledger", &call), "{call}");
        }
        // Readers still make and use consumers of their own (ordered ones have made-up names).
        for call in calls("mMVgIOA0tG0cG3S2dd5XDm") {
            assert!(user_may_publish("ledger", &call), "{call}");
            assert!(user_may_publish(&other, &call), "{call}");
        }
        assert!(user_may_publish(
            "ledger",
            &format!("$JS.API.CONSUMER.CREATE.{mempool}")
        ));
    }

    #[test]
    fn no_role_reads_a_stream_where_another_keeps_a_durable_the_table_cannot_name() {
        let s = streams();
        for keeper in Role::ALL {
            for durable in grants(keeper, keeper.name(), &s).durables {
                if durable.name.is_some() {
                    continue;
                }
                for reader in Role::ALL {
                    if reader == keeper || reader == Role::Operator {
                        continue;
                    }
                    assert!(
                        !grants(reader, reader.name(), &s)
                            .reads
                            .contains(&durable.stream),
                        "{reader:?} reads {}, where {keeper:?} keeps a durable named by its \
                         configuration that the table cannot deny to others",
                        durable.stream
                    );
                }
            }
        }
    }

    #[test]
    fn new_users_have_distinct_keys_their_seeds_prove() {
        let (a, seed) = new_user("ledger", "ledger", Permissions::default());
        let (b, _) = new_user("ledger", "ledger", Permissions::default());
        assert_ne!(a.nkey, b.nkey);
        let key = nkeys::KeyPair::from_seed(&seed).expect("a user seed");
        assert_eq!(key.public_key(), a.nkey);
        assert!(a.nkey.starts_with('U') && seed.starts_with("SU"));
    }

    #[test]
    fn the_operations_guide_shows_this_table() {
        let guide = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/operations.md"
        ))
        .unwrap();
        let table = markdown_table(&streams());
        assert!(
            guide.contains(&table),
            "docs/operations.md must hold the table `markdown_table(city-main)` renders:\n{table}"
        );
    }
}
