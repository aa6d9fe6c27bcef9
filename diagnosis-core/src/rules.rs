//! Triage rules as data: which faults a phone expert can fix, and which need a vehicle.
//!
//! Operators edit the rules as TOML (or exchange the same structure as JSON through
//! `GET/PUT /v1/admin/triage-rules`); [`TriageRules::parse`] validates a file completely
//! before it can replace the active rules, and refuses it with a [`RulesError`] that names
//! the line, the column and the field of every problem. The shipped defaults are
//! [`DEFAULT_RULES_TOML`] (`rules/default.toml` in this crate), loaded by
//! [`TriageRules::defaults`].
//!
//! Rules only say what the *fault* calls for. The [safety override](crate::safety) runs
//! first and sends a vehicle at once whatever the rules say.
//!
//! # Format
//!
//! ```toml
//! version = 1
//! skills = ["key_fob", "gear_lock"]
//!
//! [[rule]]
//! id = "key_fob_lost"
//! description = "No key at all: someone has to open or tow the car."
//! category = "key_fob"
//! symptoms_any = ["key_lost", "key_broken"]
//! outcome = "needs_vehicle"
//! dispatch_service = "lockout"
//!
//! [[rule]]
//! id = "key_fob_battery"
//! category = "key_fob"
//! outcome = "phone_solvable"
//! skill = "key_fob"
//! expected_fix_s = 600
//! instructions_hint = "Hold the fob against the start button and start."
//!
//! [fallback]
//! outcome = "needs_vehicle"
//! ```
//!
//! Top level (unknown keys are refused everywhere):
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `version` | yes | format version; must be `1` |
//! | `skills` | no | the expert skills rules may require: snake_case names of at most 48 characters, no duplicates. A `phone_solvable` outcome must name one of them, so a typo in a skill is caught here rather than leaving tickets no expert can claim. Experts' own skills (`User::skills`) use the same names. |
//! | `[[rule]]` | yes, at least one | the rules, **in order: the first rule that matches decides** |
//! | `[fallback]` | yes | the outcome when no rule matches (the shipped defaults: `needs_vehicle`) |
//!
//! Each `[[rule]]`:
//!
//! | key | required | meaning |
//! |---|---|---|
//! | `id` | yes | unique name, quoted in every triage decision and on the timeline: lowercase letters, digits, `_` and `-`, starting with a letter or digit, at most 64 characters; `fallback` is reserved |
//! | `description` | no | free text for the people who maintain the rules (at most 500 characters) |
//! | `category` | yes | the fault category (`battery`, `tyre`, `fuel`, `lockout`, `key_fob`, `gear_lock`, `warning_light`, `ev_charge_port`, `parking_brake`, `engine`, `overheating`, `accident`, `stuck`, `other`) |
//! | `symptoms_any` | no | symptom codes; matches when **at least one** is among the case's symptoms |
//! | `symptoms_all` | no | symptom codes; matches when **every one** is among the case's symptoms |
//! | `powertrain` | no | list of `petrol`, `diesel`, `hybrid`, `ev`, `other`; matches when the car's powertrain is listed. A case whose powertrain is unknown does not match a rule that names one. |
//! | `service` | no | list of requested services (`tow`, `jump_start`, `tyre_change`, `fuel_delivery`, `lockout`, `winch`); matches when the case's service is listed |
//! | `outcome` | yes | `phone_solvable` or `needs_vehicle` |
//! | `skill` | `phone_solvable` only, required | the skill an expert needs; must be declared in `skills` |
//! | `expected_fix_s` | `phone_solvable` only, required | typical length of the call, seconds, 1 to 7200 |
//! | `instructions_hint` | `phone_solvable` only, optional | a reminder shown to the expert (at most 1000 characters) |
//! | `dispatch_service` | `needs_vehicle` only, optional | the service the vehicle should be equipped for when the rule knows better than the request (advisory) |
//!
//! A rule matches a case when every condition it states holds; conditions left out always
//! hold. Symptom codes are snake_case (`no_crank`, `tpms`), at most 48 characters, the
//! same codes the case API accepts, compared exactly. Empty lists are refused (leave the key
//! out instead).
//!
//! `[fallback]` takes `outcome` and the outcome keys above.
//!
//! # Validation
//!
//! Besides syntax, types and unknown keys or vocabulary, a file is refused when: the rule
//! list is empty; two rules share an id; a skill is malformed, duplicated or not declared;
//! a symptom code is malformed; a `phone_solvable` outcome lacks its skill or expected fix
//! time, or a `needs_vehicle` outcome carries them; or a rule can never match because an
//! earlier rule matches every case it would (for instance any rule after a catch-all for
//! its category). Every problem is reported, not only the first.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use domain::{FaultCategory, FieldError, Powertrain, Service, ValidationErrors};
use serde::{Deserialize, Serialize};

use crate::triage::TriageInput;

/// The shipped default rules, as TOML (`rules/default.toml`).
pub const DEFAULT_RULES_TOML: &str = include_str!("../rules/default.toml");

/// The rules format version this crate reads and writes.
pub const RULES_FORMAT_VERSION: u32 = 1;

/// The longest expected fix time a phone-solvable outcome may state, in seconds.
pub const MAX_EXPECTED_FIX_S: u32 = 7_200;

/// The id under which the fallback outcome appears in triage decisions.
pub const FALLBACK_RULE_ID: &str = "fallback";

/// Skills and symptom codes: snake_case, at most this many bytes (the limit the case and
/// user APIs apply too).
const MAX_CODE_LEN: usize = 48;
const MAX_RULE_ID_LEN: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_HINT_CHARS: usize = 1_000;
const MAX_RULES: usize = 1_000;

fn is_snake_case_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_CODE_LEN
        && text
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

/// An expert skill, such as `key_fob`: snake_case, at most 48 characters.
///
/// ```
/// use diagnosis_core::Skill;
/// assert_eq!(Skill::parse("ev_charge_port").unwrap().as_str(), "ev_charge_port");
/// assert!(Skill::parse("EV charge port").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "key_fob"))]
pub struct Skill(String);

impl Skill {
    /// Validates a skill name.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if is_snake_case_code(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new(
                "",
                format!(
                    "skill `{raw}` must be snake_case (a-z, 0-9, _) of at most {MAX_CODE_LEN} characters"
                ),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Skill {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Skill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Skill {
    type Err = FieldError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for Skill {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Skill> for String {
    fn from(skill: Skill) -> Self {
        skill.0
    }
}

/// The id of a rule, quoted in triage decisions: lowercase letters, digits, `_` and `-`,
/// at most 64 characters. The fallback outcome is quoted as [`FALLBACK_RULE_ID`].
///
/// ```
/// use diagnosis_core::RuleId;
/// assert!(RuleId::parse("key-fob_battery2").is_ok());
/// assert!(RuleId::parse("Key Fob").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "key_fob_battery"))]
pub struct RuleId(String);

impl RuleId {
    /// Validates a rule id.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let starts_well = raw
            .bytes()
            .next()
            .is_some_and(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
        let valid = starts_well
            && raw.len() <= MAX_RULE_ID_LEN
            && raw.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
            });
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new(
                "",
                format!(
                    "rule id `{raw}` must be lowercase letters, digits, `_` or `-`, starting with a letter or digit, at most {MAX_RULE_ID_LEN} characters"
                ),
            ))
        }
    }

    /// The id of the fallback outcome.
    pub fn fallback() -> Self {
        Self(FALLBACK_RULE_ID.to_owned())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RuleId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RuleId {
    type Error = FieldError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<RuleId> for String {
    fn from(id: RuleId) -> Self {
        id.0
    }
}

/// What a rule matches on. Conditions left empty (`None`, or an empty symptom list) always
/// hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    /// The fault category; always required.
    pub category: FaultCategory,
    /// At least one of these symptoms must be present (no condition when empty).
    pub symptoms_any: Vec<String>,
    /// Every one of these symptoms must be present (no condition when empty).
    pub symptoms_all: Vec<String>,
    /// The car's powertrain must be one of these; an unknown powertrain does not match.
    pub powertrain: Option<Vec<Powertrain>>,
    /// The requested service must be one of these.
    pub service: Option<Vec<Service>>,
}

impl Conditions {
    /// Whether a case with this input satisfies every condition.
    pub fn matches(&self, input: &TriageInput) -> bool {
        if input.category != self.category {
            return false;
        }
        let present = |symptom: &String| input.symptoms.iter().any(|given| given == symptom);
        if !self.symptoms_all.iter().all(present) {
            return false;
        }
        if !self.symptoms_any.is_empty() && !self.symptoms_any.iter().any(present) {
            return false;
        }
        if let Some(powertrains) = &self.powertrain {
            let listed = input
                .powertrain
                .is_some_and(|powertrain| powertrains.contains(&powertrain));
            if !listed {
                return false;
            }
        }
        if let Some(services) = &self.service
            && !services.contains(&input.service)
        {
            return false;
        }
        true
    }

    /// Whether this rule matches every case of its category (no other condition).
    pub fn is_catch_all(&self) -> bool {
        self.symptoms_any.is_empty()
            && self.symptoms_all.is_empty()
            && self.powertrain.is_none()
            && self.service.is_none()
    }

    /// A sufficient (not necessary) test that every case matching `later` also matches
    /// `self`, which makes `later` unreachable when `self` comes first.
    fn covers(&self, later: &Conditions) -> bool {
        if self.category != later.category {
            return false;
        }
        // Symptoms certainly present whenever `later` matches.
        let mut certain: BTreeSet<&str> = later.symptoms_all.iter().map(String::as_str).collect();
        if let [only] = later.symptoms_any.as_slice() {
            certain.insert(only);
        }
        let all_covered = self
            .symptoms_all
            .iter()
            .all(|symptom| certain.contains(symptom.as_str()));
        let any_covered = self.symptoms_any.is_empty()
            || self
                .symptoms_any
                .iter()
                .any(|symptom| certain.contains(symptom.as_str()))
            || (!later.symptoms_any.is_empty()
                && later
                    .symptoms_any
                    .iter()
                    .all(|symptom| self.symptoms_any.contains(symptom)));
        all_covered
            && any_covered
            && list_covers(self.powertrain.as_deref(), later.powertrain.as_deref())
            && list_covers(self.service.as_deref(), later.service.as_deref())
    }
}

/// `earlier` admits every value `later` admits (`None` admits everything).
fn list_covers<T: PartialEq>(earlier: Option<&[T]>, later: Option<&[T]>) -> bool {
    match (earlier, later) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(earlier), Some(later)) => later.iter().all(|value| earlier.contains(value)),
    }
}

/// How an expert fixes a phone-solvable fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PhoneFix {
    /// The skill the expert needs.
    pub skill: Skill,
    /// Typical length of the call, seconds.
    pub expected_fix_s: u32,
    /// A reminder for the expert.
    pub instructions_hint: Option<String>,
}

/// What a rule (or the fallback) decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOutcome {
    /// An expert can fix it on the phone.
    PhoneSolvable(PhoneFix),
    /// A vehicle must go.
    NeedsVehicle {
        /// The service the vehicle should be equipped for, when the rule knows better than
        /// the request (advisory).
        dispatch_service: Option<Service>,
    },
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Unique id.
    pub id: RuleId,
    /// Notes for the maintainers.
    pub description: Option<String>,
    /// What it matches.
    pub when: Conditions,
    /// What it decides.
    pub then: RuleOutcome,
}

/// The rule (or fallback) that decided a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// The matching rule; `None` when the fallback applied.
    pub rule: Option<&'a Rule>,
    /// Its outcome.
    pub outcome: &'a RuleOutcome,
}

impl Verdict<'_> {
    /// The id quoted in decisions: the rule's, or [`FALLBACK_RULE_ID`].
    pub fn rule_id(&self) -> RuleId {
        self.rule
            .map_or_else(RuleId::fallback, |rule| rule.id.clone())
    }
}

/// A validated, ordered set of triage rules with an explicit fallback.
///
/// The only ways to get one are [`TriageRules::parse`] (TOML), [`TriageRules::from_json`],
/// [`TriageRules::from_document`], serde deserialization (the JSON form, validated the
/// same way) and [`TriageRules::defaults`], so an invalid rule set never exists.
///
/// ```
/// use diagnosis_core::TriageRules;
/// let rules = TriageRules::defaults();
/// // The TOML and JSON forms round-trip.
/// assert_eq!(TriageRules::parse(&rules.to_toml()).unwrap(), rules);
/// let json = serde_json::to_string(&rules).unwrap();
/// assert_eq!(TriageRules::from_json(&json).unwrap(), rules);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RulesDocument", into = "RulesDocument")]
pub struct TriageRules {
    skills: Vec<Skill>,
    rules: Vec<Rule>,
    fallback: RuleOutcome,
}

impl TriageRules {
    /// Parses and validates rules written as TOML. Every problem is reported with its line,
    /// column and field.
    ///
    /// ```
    /// use diagnosis_core::TriageRules;
    /// let text = "version = 1\n\n[[rule]]\nid = \"engine\"\ncategory = \"engin\"\noutcome = \"needs_vehicle\"\n\n[fallback]\noutcome = \"needs_vehicle\"\n";
    /// let error = TriageRules::parse(text).unwrap_err();
    /// let problem = error.first().unwrap();
    /// assert_eq!((problem.line, problem.column), (Some(5), Some(12)));
    /// assert_eq!(problem.field, "rule[0].category");
    /// assert!(problem.message.contains("unknown variant `engin`"));
    /// ```
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let document = parse_toml_document(text)?;
        Self::validate(&document).map_err(|problems| {
            RulesError::new(
                problems
                    .into_iter()
                    .map(|(path, message)| {
                        let position =
                            locate_in_toml(text, &path).map(|span| line_column(text, span.start));
                        RulesProblem::new(path.to_string(), position, message)
                    })
                    .collect(),
            )
        })
    }

    /// Parses and validates rules in their JSON form (the same structure as the TOML:
    /// `{"version": 1, "skills": […], "rule": [{…}], "fallback": {…}}`). Syntax and type
    /// errors carry a line and column; every error names its field.
    pub fn from_json(text: &str) -> Result<Self, RulesError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let document: RulesDocument =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                let field = path_to_field(error.path());
                let inner = error.into_inner();
                let position = (inner.line() > 0).then(|| (inner.line(), inner.column()));
                let message = inner.to_string();
                // serde_json appends the position to its message; we report it separately.
                let message = match message.rsplit_once(" at line ") {
                    Some((message, _)) => message.to_owned(),
                    None => message,
                };
                RulesError::new(vec![RulesProblem::new(field, position, message)])
            })?;
        Self::from_document(document)
    }

    /// Validates a rules document (the wire form). Errors name the field but carry no
    /// position.
    pub fn from_document(document: RulesDocument) -> Result<Self, RulesError> {
        Self::validate(&document).map_err(|problems| {
            RulesError::new(
                problems
                    .into_iter()
                    .map(|(path, message)| RulesProblem::new(path.to_string(), None, message))
                    .collect(),
            )
        })
    }

    /// The shipped default rules ([`DEFAULT_RULES_TOML`]).
    pub fn defaults() -> Self {
        Self::parse(DEFAULT_RULES_TOML).expect("the shipped default rules are valid (tested)")
    }

    /// The rules as TOML, in the format [`TriageRules::parse`] reads. Comments of the text
    /// they were parsed from are not kept: a server that wants to serve back exactly what
    /// an operator uploaded stores the uploaded text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.to_document())
            .expect("a rules document has only tables, strings, integers and arrays")
    }

    /// The wire form, for JSON or TOML serialization.
    pub fn to_document(&self) -> RulesDocument {
        RulesDocument {
            version: RULES_FORMAT_VERSION,
            skills: self.skills.iter().map(|skill| skill.0.clone()).collect(),
            rules: self.rules.iter().map(RuleDocument::from_rule).collect(),
            fallback: FallbackDocument::from_outcome(&self.fallback),
        }
    }

    /// The declared skills, in file order.
    pub fn skills(&self) -> &[Skill] {
        &self.skills
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The outcome when no rule matches.
    pub fn fallback(&self) -> &RuleOutcome {
        &self.fallback
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.id.as_str() == id)
    }

    /// The first rule that matches, or the fallback. This is the rules alone: use
    /// [`crate::triage()`] for a decision, which applies the safety override first.
    pub fn evaluate(&self, input: &TriageInput) -> Verdict<'_> {
        match self.rules.iter().find(|rule| rule.when.matches(input)) {
            Some(rule) => Verdict {
                rule: Some(rule),
                outcome: &rule.then,
            },
            None => Verdict {
                rule: None,
                outcome: &self.fallback,
            },
        }
    }

    fn validate(document: &RulesDocument) -> Result<Self, Vec<(FieldPath, String)>> {
        let mut problems = Problems::default();
        if document.version != RULES_FORMAT_VERSION {
            problems.push(
                FieldPath::root("version"),
                format!(
                    "unsupported version {}, this server reads version {RULES_FORMAT_VERSION}",
                    document.version
                ),
            );
        }

        let mut skills = Vec::with_capacity(document.skills.len());
        for (index, raw) in document.skills.iter().enumerate() {
            let path = FieldPath::root("skills").index(index);
            match Skill::parse(raw) {
                Ok(skill) if skills.contains(&skill) => {
                    problems.push(path, format!("skill `{raw}` is declared twice"));
                }
                Ok(skill) => skills.push(skill),
                Err(error) => problems.push(path, error.message),
            }
        }

        if document.rules.is_empty() {
            problems.push(
                FieldPath::root("rule"),
                "at least one [[rule]] is required".to_owned(),
            );
        }
        if document.rules.len() > MAX_RULES {
            problems.push(
                FieldPath::root("rule"),
                format!("at most {MAX_RULES} rules are allowed"),
            );
        }

        let mut first_index_of_id: HashMap<&str, usize> = HashMap::new();
        let mut rules: Vec<Option<Rule>> = Vec::with_capacity(document.rules.len());
        for (index, raw) in document.rules.iter().enumerate() {
            let path = FieldPath::root("rule").index(index);
            if let Some(first) = first_index_of_id.get(raw.id.as_str()) {
                problems.push(
                    path.key("id"),
                    format!(
                        "duplicate rule id `{}`, already used by rule[{first}]",
                        raw.id
                    ),
                );
            } else {
                first_index_of_id.insert(&raw.id, index);
            }
            rules.push(validate_rule(raw, &skills, &path, &mut problems));
        }

        // Unreachable rules: an earlier rule already matches everything this one would.
        for (later_index, later) in rules.iter().enumerate() {
            let Some(later) = later else { continue };
            let shadowing = rules[..later_index]
                .iter()
                .enumerate()
                .find_map(|(index, earlier)| {
                    earlier
                        .as_ref()
                        .filter(|earlier| earlier.when.covers(&later.when))
                        .map(|earlier| (index, earlier))
                });
            if let Some((earlier_index, earlier)) = shadowing {
                problems.push(
                    FieldPath::root("rule").index(later_index),
                    format!(
                        "rule `{}` can never match: rule[{earlier_index}] `{}` above it matches every case it would; move it above `{}` or narrow `{}`",
                        later.id, earlier.id, earlier.id, earlier.id
                    ),
                );
            }
        }

        let fallback = validate_outcome(
            &OutcomeFields::of_fallback(&document.fallback),
            &skills,
            &FieldPath::root("fallback"),
            &mut problems,
        );

        if !problems.0.is_empty() {
            return Err(problems.0);
        }
        match fallback {
            Some(fallback) => Ok(Self {
                skills,
                rules: rules.into_iter().flatten().collect(),
                fallback,
            }),
            None => Err(vec![(
                FieldPath::root("fallback"),
                "invalid fallback".to_owned(),
            )]),
        }
    }
}

impl TryFrom<RulesDocument> for TriageRules {
    type Error = RulesError;
    fn try_from(document: RulesDocument) -> Result<Self, Self::Error> {
        Self::from_document(document)
    }
}

impl From<TriageRules> for RulesDocument {
    fn from(rules: TriageRules) -> Self {
        rules.to_document()
    }
}

fn validate_rule(
    raw: &RuleDocument,
    skills: &[Skill],
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<Rule> {
    let before = problems.0.len();
    let id = match RuleId::parse(&raw.id) {
        Ok(_) if raw.id == FALLBACK_RULE_ID => {
            problems.push(
                path.key("id"),
                format!("`{FALLBACK_RULE_ID}` is reserved for the [fallback] outcome"),
            );
            None
        }
        Ok(id) => Some(id),
        Err(error) => {
            problems.push(path.key("id"), error.message);
            None
        }
    };
    if let Some(description) = &raw.description
        && description.chars().count() > MAX_DESCRIPTION_CHARS
    {
        problems.push(
            path.key("description"),
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        );
    }
    let symptoms_any = validate_symptoms(
        raw.symptoms_any.as_deref(),
        &path.key("symptoms_any"),
        problems,
    );
    let symptoms_all = validate_symptoms(
        raw.symptoms_all.as_deref(),
        &path.key("symptoms_all"),
        problems,
    );
    validate_not_empty(raw.powertrain.as_deref(), &path.key("powertrain"), problems);
    validate_not_empty(raw.service.as_deref(), &path.key("service"), problems);
    let outcome = validate_outcome(&OutcomeFields::of_rule(raw), skills, path, problems);
    if problems.0.len() > before {
        return None;
    }
    Some(Rule {
        id: id?,
        description: raw.description.clone(),
        when: Conditions {
            category: raw.category,
            symptoms_any,
            symptoms_all,
            powertrain: raw.powertrain.clone(),
            service: raw.service.clone(),
        },
        then: outcome?,
    })
}

fn validate_symptoms(
    symptoms: Option<&[String]>,
    path: &FieldPath,
    problems: &mut Problems,
) -> Vec<String> {
    let Some(symptoms) = symptoms else {
        return Vec::new();
    };
    if symptoms.is_empty() {
        problems.push(
            path.clone(),
            "must list at least one symptom code; leave the key out for no condition".to_owned(),
        );
    }
    for (index, symptom) in symptoms.iter().enumerate() {
        if !is_snake_case_code(symptom) {
            problems.push(
                path.index(index),
                format!(
                    "symptom code `{symptom}` must be snake_case (a-z, 0-9, _) of at most {MAX_CODE_LEN} characters"
                ),
            );
        }
    }
    symptoms.to_vec()
}

fn validate_not_empty<T>(values: Option<&[T]>, path: &FieldPath, problems: &mut Problems) {
    if values.is_some_and(<[T]>::is_empty) {
        problems.push(
            path.clone(),
            "must list at least one value; leave the key out for no condition".to_owned(),
        );
    }
}

/// The outcome keys shared by a rule and the fallback.
struct OutcomeFields<'a> {
    outcome: OutcomeKind,
    skill: Option<&'a str>,
    expected_fix_s: Option<u32>,
    instructions_hint: Option<&'a str>,
    dispatch_service: Option<Service>,
}

impl<'a> OutcomeFields<'a> {
    fn of_rule(rule: &'a RuleDocument) -> Self {
        Self {
            outcome: rule.outcome,
            skill: rule.skill.as_deref(),
            expected_fix_s: rule.expected_fix_s,
            instructions_hint: rule.instructions_hint.as_deref(),
            dispatch_service: rule.dispatch_service,
        }
    }

    fn of_fallback(fallback: &'a FallbackDocument) -> Self {
        Self {
            outcome: fallback.outcome,
            skill: fallback.skill.as_deref(),
            expected_fix_s: fallback.expected_fix_s,
            instructions_hint: fallback.instructions_hint.as_deref(),
            dispatch_service: fallback.dispatch_service,
        }
    }
}

fn validate_outcome(
    fields: &OutcomeFields<'_>,
    skills: &[Skill],
    path: &FieldPath,
    problems: &mut Problems,
) -> Option<RuleOutcome> {
    match fields.outcome {
        OutcomeKind::PhoneSolvable => {
            if fields.dispatch_service.is_some() {
                problems.push(
                    path.key("dispatch_service"),
                    "only a needs_vehicle outcome takes a dispatch_service".to_owned(),
                );
            }
            let skill = match fields.skill {
                None => {
                    problems.push(
                        path.key("skill"),
                        "a phone_solvable outcome needs the skill an expert must have".to_owned(),
                    );
                    None
                }
                Some(raw) => match Skill::parse(raw) {
                    Err(error) => {
                        problems.push(path.key("skill"), error.message);
                        None
                    }
                    Ok(skill) if !skills.contains(&skill) => {
                        let declared: Vec<&str> = skills.iter().map(Skill::as_str).collect();
                        problems.push(
                            path.key("skill"),
                            format!(
                                "unknown skill `{raw}`; declare it in `skills` (declared: {})",
                                if declared.is_empty() {
                                    "none".to_owned()
                                } else {
                                    declared.join(", ")
                                }
                            ),
                        );
                        None
                    }
                    Ok(skill) => Some(skill),
                },
            };
            let expected_fix_s = match fields.expected_fix_s {
                None => {
                    problems.push(
                        path.key("expected_fix_s"),
                        "a phone_solvable outcome needs expected_fix_s, the typical call length in seconds".to_owned(),
                    );
                    None
                }
                Some(seconds) if seconds == 0 || seconds > MAX_EXPECTED_FIX_S => {
                    problems.push(
                        path.key("expected_fix_s"),
                        format!(
                            "must be between 1 and {MAX_EXPECTED_FIX_S} seconds, got {seconds}"
                        ),
                    );
                    None
                }
                Some(seconds) => Some(seconds),
            };
            if let Some(hint) = fields.instructions_hint
                && hint.chars().count() > MAX_HINT_CHARS
            {
                problems.push(
                    path.key("instructions_hint"),
                    format!("must be at most {MAX_HINT_CHARS} characters"),
                );
            }
            Some(RuleOutcome::PhoneSolvable(PhoneFix {
                skill: skill?,
                expected_fix_s: expected_fix_s?,
                instructions_hint: fields.instructions_hint.map(str::to_owned),
            }))
        }
        OutcomeKind::NeedsVehicle => {
            let phone_only = [
                ("skill", fields.skill.is_some()),
                ("expected_fix_s", fields.expected_fix_s.is_some()),
                ("instructions_hint", fields.instructions_hint.is_some()),
            ];
            for (key, present) in phone_only {
                if present {
                    problems.push(
                        path.key(key),
                        format!("only a phone_solvable outcome takes `{key}`"),
                    );
                }
            }
            Some(RuleOutcome::NeedsVehicle {
                dispatch_service: fields.dispatch_service,
            })
        }
    }
}

#[derive(Default)]
struct Problems(Vec<(FieldPath, String)>);

impl Problems {
    fn push(&mut self, path: FieldPath, message: String) {
        self.0.push((path, message));
    }
}

/// A path into the rules document: `rule[2].skill`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct FieldPath(Vec<PathSegment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathSegment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    fn root(key: &str) -> Self {
        Self(vec![PathSegment::Key(key.to_owned())])
    }

    fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(PathSegment::Index(index));
        path
    }

    fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(PathSegment::Key(key.to_owned()));
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if position == 0 => f.write_str(key)?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

fn field_path_of(path: &serde_path_to_error::Path) -> FieldPath {
    use serde_path_to_error::Segment;
    FieldPath(
        path.iter()
            .filter_map(|segment| match segment {
                Segment::Seq { index } => Some(PathSegment::Index(*index)),
                Segment::Map { key } => Some(PathSegment::Key(key.clone())),
                Segment::Enum { variant } => Some(PathSegment::Key(variant.clone())),
                Segment::Unknown => None,
            })
            .collect(),
    )
}

fn path_to_field(path: &serde_path_to_error::Path) -> String {
    field_path_of(path).to_string()
}

fn parse_toml_document(text: &str) -> Result<RulesDocument, RulesError> {
    let syntax_error = |error: toml::de::Error| {
        let position = error.span().map(|span| line_column(text, span.start));
        RulesError::new(vec![RulesProblem::new(
            String::new(),
            position,
            error.message().trim().to_owned(),
        )])
    };
    let deserializer = toml::Deserializer::parse(text).map_err(syntax_error)?;
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = field_path_of(error.path());
        let inner = error.into_inner();
        let span = inner.span().or_else(|| locate_in_toml(text, &path));
        RulesError::new(vec![RulesProblem::new(
            path.to_string(),
            span.map(|span| line_column(text, span.start)),
            inner.message().trim().to_owned(),
        )])
    })
}

/// The span of the deepest element of `path` present in the TOML text: the value itself
/// when it is there, else the table that should have held it (for a `[[rule]]`, its header).
fn locate_in_toml(text: &str, path: &FieldPath) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    enum Node<'a, 'i> {
        Table(&'a DeTable<'i>),
        Value(&'a DeValue<'i>),
    }
    let root = DeTable::parse(text).ok()?;
    let mut node = Node::Table(root.get_ref());
    let mut span = None;
    for segment in &path.0 {
        let child = match (segment, &node) {
            (PathSegment::Key(key), Node::Table(table)) => table.get(key.as_str()),
            (PathSegment::Key(key), Node::Value(value)) => {
                value.as_table().and_then(|table| table.get(key.as_str()))
            }
            (PathSegment::Index(index), Node::Value(value)) => {
                value.as_array().and_then(|array| array.get(*index))
            }
            (PathSegment::Index(_), Node::Table(_)) => None,
        };
        let Some(child) = child else { break };
        span = Some(child.span());
        node = Node::Value(child.get_ref());
    }
    span
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = text.floor_char_boundary(offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// One problem in a rules file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RulesProblem {
    /// The field, as a path into the document (`rule[2].skill`); empty for a syntax error.
    pub field: String,
    /// 1-based line in the TOML (or JSON) text, when known.
    pub line: Option<usize>,
    /// 1-based column, in characters, when known.
    pub column: Option<usize>,
    /// What is wrong, in lowercase prose.
    pub message: String,
}

impl RulesProblem {
    fn new(field: String, position: Option<(usize, usize)>, message: String) -> Self {
        Self {
            field,
            line: position.map(|(line, _)| line),
            column: position.map(|(_, column)| column),
            message,
        }
    }
}

impl fmt::Display for RulesProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        if !self.field.is_empty() {
            write!(f, "`{}`: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a rules file was refused: every problem found, never empty.
///
/// ```
/// use diagnosis_core::TriageRules;
/// let error = TriageRules::parse("version = 1\nskils = []\n").unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "line 2, column 1: `skils`: unknown field `skils`, expected one of `version`, `skills`, `rule`, `fallback`"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RulesError {
    /// The problems, in the order they were found; never empty.
    problems: Vec<RulesProblem>,
}

impl RulesError {
    fn new(problems: Vec<RulesProblem>) -> Self {
        debug_assert!(
            !problems.is_empty(),
            "a rules error names at least one problem"
        );
        Self { problems }
    }

    /// Every problem, in the order found.
    pub fn problems(&self) -> &[RulesProblem] {
        &self.problems
    }

    /// The first problem, the one an API message leads with (always present).
    pub fn first(&self) -> Option<&RulesProblem> {
        self.problems.first()
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// For the API's 422 body: one field error per problem, the position in the message.
impl From<RulesError> for ValidationErrors {
    fn from(error: RulesError) -> Self {
        ValidationErrors(
            error
                .problems
                .into_iter()
                .map(|problem| {
                    let message = match (problem.line, problem.column) {
                        (Some(line), Some(column)) => {
                            format!("line {line}, column {column}: {}", problem.message)
                        }
                        _ => problem.message,
                    };
                    FieldError::new(problem.field, message)
                })
                .collect(),
        )
    }
}

/// The wire form of the rules, for TOML and JSON alike: what `GET /v1/admin/triage-rules`
/// serves and `PUT` accepts. See the [module docs](self) for every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RulesDocument {
    /// Format version, `1`.
    pub version: u32,
    /// The skills phone-solvable outcomes may require.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// The rules, first match wins (`[[rule]]` in TOML).
    #[serde(default, rename = "rule")]
    pub rules: Vec<RuleDocument>,
    /// The outcome when no rule matches.
    pub fallback: FallbackDocument,
}

/// One `[[rule]]` in the wire form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleDocument {
    /// Unique id.
    pub id: String,
    /// Notes for the maintainers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Fault category.
    pub category: FaultCategory,
    /// At least one of these symptoms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptoms_any: Option<Vec<String>>,
    /// All of these symptoms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symptoms_all: Option<Vec<String>>,
    /// One of these powertrains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powertrain: Option<Vec<Powertrain>>,
    /// One of these requested services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Vec<Service>>,
    /// `phone_solvable` or `needs_vehicle`.
    pub outcome: OutcomeKind,
    /// Phone-solvable: the skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// Phone-solvable: typical call length, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_fix_s: Option<u32>,
    /// Phone-solvable: a reminder for the expert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions_hint: Option<String>,
    /// Needs-vehicle: the service the vehicle should be equipped for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_service: Option<Service>,
}

impl RuleDocument {
    fn from_rule(rule: &Rule) -> Self {
        let outcome = FallbackDocument::from_outcome(&rule.then);
        let non_empty = |symptoms: &Vec<String>| (!symptoms.is_empty()).then(|| symptoms.clone());
        Self {
            id: rule.id.0.clone(),
            description: rule.description.clone(),
            category: rule.when.category,
            symptoms_any: non_empty(&rule.when.symptoms_any),
            symptoms_all: non_empty(&rule.when.symptoms_all),
            powertrain: rule.when.powertrain.clone(),
            service: rule.when.service.clone(),
            outcome: outcome.outcome,
            skill: outcome.skill,
            expected_fix_s: outcome.expected_fix_s,
            instructions_hint: outcome.instructions_hint,
            dispatch_service: outcome.dispatch_service,
        }
    }
}

/// The `[fallback]` table in the wire form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FallbackDocument {
    /// `phone_solvable` or `needs_vehicle`.
    pub outcome: OutcomeKind,
    /// Phone-solvable: the skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    /// Phone-solvable: typical call length, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_fix_s: Option<u32>,
    /// Phone-solvable: a reminder for the expert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions_hint: Option<String>,
    /// Needs-vehicle: the service the vehicle should be equipped for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch_service: Option<Service>,
}

impl FallbackDocument {
    fn from_outcome(outcome: &RuleOutcome) -> Self {
        match outcome {
            RuleOutcome::PhoneSolvable(fix) => Self {
                outcome: OutcomeKind::PhoneSolvable,
                skill: Some(fix.skill.0.clone()),
                expected_fix_s: Some(fix.expected_fix_s),
                instructions_hint: fix.instructions_hint.clone(),
                dispatch_service: None,
            },
            RuleOutcome::NeedsVehicle { dispatch_service } => Self {
                outcome: OutcomeKind::NeedsVehicle,
                skill: None,
                expected_fix_s: None,
                instructions_hint: None,
                dispatch_service: *dispatch_service,
            },
        }
    }
}

/// The two outcomes a rule can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// An expert can fix it on the phone.
    PhoneSolvable,
    /// A vehicle must go.
    NeedsVehicle,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::SafetyFlags;
    use domain::{LatLon, RoadKind};

    const HEADER: &str = "version = 1\nskills = [\"key_fob\", \"gear_lock\"]\n";
    const FALLBACK: &str = "\n[fallback]\noutcome = \"needs_vehicle\"\n";

    /// A file whose rules start on line 3 (line 4 for `PHONE_RULE`, which opens with a
    /// blank line: `[[rule]]` 4, `id` 5, `category` 6, `outcome` 7, `skill` 8,
    /// `expected_fix_s` 9, anything appended 10).
    fn file(rules: &str) -> String {
        format!("{HEADER}{rules}{FALLBACK}")
    }

    fn problems(text: &str) -> Vec<RulesProblem> {
        TriageRules::parse(text)
            .expect_err("the file should be refused")
            .problems
    }

    fn only_problem(text: &str) -> RulesProblem {
        let mut problems = problems(text);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        problems.remove(0)
    }

    fn assert_problem(
        problem: &RulesProblem,
        field: &str,
        line: usize,
        column: usize,
        message_part: &str,
    ) {
        assert_eq!(problem.field, field, "{problem:?}");
        assert_eq!(
            (problem.line, problem.column),
            (Some(line), Some(column)),
            "{problem:?}"
        );
        assert!(
            problem.message.contains(message_part),
            "{:?} should contain {message_part:?}",
            problem.message
        );
    }

    fn input(category: FaultCategory, symptoms: &[&str]) -> TriageInput {
        TriageInput {
            category,
            symptoms: symptoms
                .iter()
                .map(|symptom| (*symptom).to_owned())
                .collect(),
            powertrain: None,
            service: Service::Tow,
            road_kind: RoadKind::Urban,
            position: LatLon::new(31.2304, 121.4737).expect("valid position"),
            at: "2026-05-04T02:00:00Z".parse().expect("valid time"),
            safety: SafetyFlags::default(),
        }
    }

    const PHONE_RULE: &str = "\n[[rule]]\nid = \"fob\"\ncategory = \"key_fob\"\noutcome = \"phone_solvable\"\nskill = \"key_fob\"\nexpected_fix_s = 600\n";

    #[test]
    fn the_shipped_defaults_parse() {
        let rules = TriageRules::parse(DEFAULT_RULES_TOML).expect("defaults are valid");
        assert!(rules.rules().len() >= 20);
        assert_eq!(
            rules.fallback(),
            &RuleOutcome::NeedsVehicle {
                dispatch_service: None
            }
        );
        assert_eq!(TriageRules::defaults(), rules);
    }

    #[test]
    fn by_default_the_five_phone_categories_are_phone_solvable_without_any_symptom() {
        let rules = TriageRules::defaults();
        for (category, skill) in [
            (FaultCategory::KeyFob, "key_fob"),
            (FaultCategory::GearLock, "gear_lock"),
            (FaultCategory::WarningLight, "warning_light"),
            (FaultCategory::EvChargePort, "ev_charge_port"),
            (FaultCategory::ParkingBrake, "parking_brake"),
        ] {
            match rules.evaluate(&input(category, &[])).outcome {
                RuleOutcome::PhoneSolvable(fix) => assert_eq!(fix.skill.as_str(), skill),
                other => panic!("{category} should be phone-solvable, got {other:?}"),
            }
        }
    }

    #[test]
    fn every_phone_skill_of_the_defaults_is_declared_and_every_declared_skill_is_used() {
        let rules = TriageRules::defaults();
        let used: BTreeSet<&str> = rules
            .rules()
            .iter()
            .filter_map(|rule| match &rule.then {
                RuleOutcome::PhoneSolvable(fix) => Some(fix.skill.as_str()),
                RuleOutcome::NeedsVehicle { .. } => None,
            })
            .collect();
        let declared: BTreeSet<&str> = rules.skills().iter().map(Skill::as_str).collect();
        assert_eq!(used, declared);
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let text = file(
            "\n[[rule]]\nid = \"lost\"\ncategory = \"key_fob\"\nsymptoms_any = [\"key_lost\"]\noutcome = \"needs_vehicle\"\n\n[[rule]]\nid = \"fob\"\ncategory = \"key_fob\"\noutcome = \"phone_solvable\"\nskill = \"key_fob\"\nexpected_fix_s = 600\n",
        );
        let rules = TriageRules::parse(&text).expect("valid");
        let lost = rules.evaluate(&input(FaultCategory::KeyFob, &["key_lost"]));
        assert_eq!(lost.rule_id().as_str(), "lost");
        let flat_fob = rules.evaluate(&input(FaultCategory::KeyFob, &["key_not_detected"]));
        assert_eq!(flat_fob.rule_id().as_str(), "fob");
        let other = rules.evaluate(&input(FaultCategory::Engine, &[]));
        assert_eq!(other.rule_id().as_str(), FALLBACK_RULE_ID);
        assert!(other.rule.is_none());
    }

    #[test]
    fn symptoms_all_powertrain_and_service_conditions_must_all_hold() {
        let text = file(
            "\n[[rule]]\nid = \"ev_fob_tow\"\ncategory = \"key_fob\"\nsymptoms_all = [\"a\", \"b\"]\npowertrain = [\"ev\", \"hybrid\"]\nservice = [\"tow\"]\noutcome = \"phone_solvable\"\nskill = \"key_fob\"\nexpected_fix_s = 60\n",
        );
        let rules = TriageRules::parse(&text).expect("valid");
        let mut case = input(FaultCategory::KeyFob, &["b", "a", "c"]);
        case.powertrain = Some(Powertrain::Ev);
        assert!(rules.evaluate(&case).rule.is_some());

        let mut only_one_symptom = case.clone();
        only_one_symptom.symptoms = vec!["a".to_owned()];
        assert!(rules.evaluate(&only_one_symptom).rule.is_none());

        let mut unknown_powertrain = case.clone();
        unknown_powertrain.powertrain = None;
        assert!(rules.evaluate(&unknown_powertrain).rule.is_none());

        let mut petrol = case.clone();
        petrol.powertrain = Some(Powertrain::Petrol);
        assert!(rules.evaluate(&petrol).rule.is_none());

        let mut jump_start = case;
        jump_start.service = Service::JumpStart;
        assert!(rules.evaluate(&jump_start).rule.is_none());
    }

    #[test]
    fn a_toml_syntax_error_is_refused_with_its_line() {
        let text = file("\n[[rule]]\nid = \"fob\ncategory = \"key_fob\"\n");
        let problem = only_problem(&text);
        assert_eq!(problem.line, Some(5), "{problem:?}");
        assert!(problem.column.is_some());
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_key_and_its_line() {
        let text = file(&format!("{PHONE_RULE}skil = \"key_fob\"\n"));
        let problem = only_problem(&text);
        assert_problem(&problem, "rule[0].skil", 10, 1, "unknown field `skil`");
    }

    #[test]
    fn an_unknown_top_level_key_is_refused() {
        let text = format!("version = 1\nskils = [\"key_fob\"]\n{PHONE_RULE}{FALLBACK}");
        let problem = only_problem(&text);
        assert_problem(&problem, "skils", 2, 1, "unknown field `skils`");
    }

    #[test]
    fn an_unknown_category_is_refused_naming_the_value() {
        let text = file(&PHONE_RULE.replace("\"key_fob\"\noutcome", "\"keyfob\"\noutcome"));
        let problem = only_problem(&text);
        assert_problem(
            &problem,
            "rule[0].category",
            6,
            12,
            "unknown variant `keyfob`",
        );
        assert!(
            problem.message.contains("key_fob"),
            "lists the accepted names"
        );
    }

    #[test]
    fn an_unknown_outcome_or_powertrain_is_refused() {
        let text = file(&PHONE_RULE.replace("\"phone_solvable\"", "\"phone\""));
        assert_problem(
            &only_problem(&text),
            "rule[0].outcome",
            7,
            11,
            "unknown variant `phone`",
        );
        let text = file(&format!("{PHONE_RULE}powertrain = [\"steam\"]\n"));
        assert_problem(
            &only_problem(&text),
            "rule[0].powertrain[0]",
            10,
            15,
            "unknown variant `steam`",
        );
    }

    #[test]
    fn a_malformed_symptom_code_is_refused_pointing_at_the_element() {
        let text = file(&format!(
            "{PHONE_RULE}symptoms_any = [\"no_crank\", \"No Crank\"]\n"
        ));
        let problem = only_problem(&text);
        assert_problem(
            &problem,
            "rule[0].symptoms_any[1]",
            10,
            29,
            "symptom code `No Crank`",
        );
    }

    #[test]
    fn an_empty_symptom_list_is_refused() {
        let text = file(&format!("{PHONE_RULE}symptoms_all = []\n"));
        assert_problem(
            &only_problem(&text),
            "rule[0].symptoms_all",
            10,
            16,
            "at least one symptom",
        );
    }

    #[test]
    fn an_undeclared_skill_is_refused_listing_the_declared_ones() {
        let text = file(&PHONE_RULE.replace("skill = \"key_fob\"", "skill = \"key_fbo\""));
        let problem = only_problem(&text);
        assert_problem(&problem, "rule[0].skill", 8, 9, "unknown skill `key_fbo`");
        assert!(problem.message.contains("declared: key_fob, gear_lock"));
    }

    #[test]
    fn malformed_or_duplicate_declared_skills_are_refused() {
        let text = format!(
            "version = 1\nskills = [\"key_fob\", \"Key Fob\", \"key_fob\"]\n{PHONE_RULE}{FALLBACK}"
        );
        let problems = problems(&text);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_problem(
            &problems[0],
            "skills[1]",
            2,
            22,
            "skill `Key Fob` must be snake_case",
        );
        assert_problem(&problems[1], "skills[2]", 2, 33, "declared twice");
    }

    #[test]
    fn a_phone_solvable_rule_without_skill_or_fix_time_is_refused_at_its_header() {
        let text = file(
            "\n[[rule]]\nid = \"fob\"\ncategory = \"key_fob\"\noutcome = \"phone_solvable\"\n",
        );
        let problems = problems(&text);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_problem(&problems[0], "rule[0].skill", 4, 1, "needs the skill");
        assert_problem(
            &problems[1],
            "rule[0].expected_fix_s",
            4,
            1,
            "needs expected_fix_s",
        );
    }

    #[test]
    fn a_needs_vehicle_rule_with_phone_fields_is_refused() {
        let text = file(&PHONE_RULE.replace("\"phone_solvable\"", "\"needs_vehicle\""));
        let problems = problems(&text);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_problem(
            &problems[0],
            "rule[0].skill",
            8,
            9,
            "only a phone_solvable outcome",
        );
        assert_problem(
            &problems[1],
            "rule[0].expected_fix_s",
            9,
            18,
            "only a phone_solvable outcome",
        );
    }

    #[test]
    fn an_out_of_range_or_mistyped_fix_time_is_refused() {
        let zero = file(&PHONE_RULE.replace("= 600", "= 0"));
        assert_problem(
            &only_problem(&zero),
            "rule[0].expected_fix_s",
            9,
            18,
            "between 1 and 7200",
        );
        let negative = file(&PHONE_RULE.replace("= 600", "= -5"));
        assert_problem(
            &only_problem(&negative),
            "rule[0].expected_fix_s",
            9,
            18,
            "-5",
        );
        let text = file(&PHONE_RULE.replace("= 600", "= \"ten minutes\""));
        assert_problem(
            &only_problem(&text),
            "rule[0].expected_fix_s",
            9,
            18,
            "invalid type",
        );
    }

    #[test]
    fn an_empty_rule_list_is_refused() {
        let problem = only_problem(&file(""));
        assert_eq!(problem.field, "rule");
        assert!(problem.message.contains("at least one [[rule]]"));
    }

    #[test]
    fn a_missing_fallback_is_refused() {
        let text = format!("{HEADER}{PHONE_RULE}");
        let problem = only_problem(&text);
        assert!(
            problem.message.contains("missing field `fallback`"),
            "{problem:?}"
        );
    }

    #[test]
    fn duplicate_rule_ids_are_refused_at_the_second_one() {
        let text = file(&format!(
            "{PHONE_RULE}{}",
            PHONE_RULE.replace("\"key_fob\"\noutcome", "\"gear_lock\"\noutcome")
        ));
        let problem = only_problem(&text);
        assert_problem(&problem, "rule[1].id", 12, 6, "duplicate rule id `fob`");
    }

    #[test]
    fn the_fallback_id_is_reserved() {
        let text = file(&PHONE_RULE.replace("id = \"fob\"", "id = \"fallback\""));
        assert_problem(&only_problem(&text), "rule[0].id", 5, 6, "reserved");
    }

    #[test]
    fn a_rule_after_a_catch_all_for_its_category_is_refused_as_unreachable() {
        let text = file(&format!(
            "{PHONE_RULE}\n[[rule]]\nid = \"lost\"\ncategory = \"key_fob\"\nsymptoms_any = [\"key_lost\"]\noutcome = \"needs_vehicle\"\n"
        ));
        let problem = only_problem(&text);
        assert_problem(&problem, "rule[1]", 11, 1, "rule `lost` can never match");
        assert!(problem.message.contains("rule[0] `fob`"));
    }

    #[test]
    fn a_rule_narrower_than_an_earlier_one_is_refused_but_a_wider_one_is_kept() {
        let rule = |id: &str, symptoms: &str| {
            format!(
                "\n[[rule]]\nid = \"{id}\"\ncategory = \"tyre\"\nsymptoms_any = [{symptoms}]\noutcome = \"needs_vehicle\"\n"
            )
        };
        let narrower_second = file(&format!(
            "{}{}",
            rule("wide", "\"a\", \"b\""),
            rule("narrow", "\"a\"")
        ));
        assert_eq!(only_problem(&narrower_second).field, "rule[1]");
        let wider_second = file(&format!(
            "{}{}",
            rule("narrow", "\"a\""),
            rule("wide", "\"a\", \"b\"")
        ));
        assert!(TriageRules::parse(&wider_second).is_ok());
        // A powertrain restriction on the earlier rule leaves room for the later one.
        let restricted = file(&format!(
            "\n[[rule]]\nid = \"ev\"\ncategory = \"tyre\"\npowertrain = [\"ev\"]\noutcome = \"needs_vehicle\"\n{}",
            rule("any", "\"a\"")
        ));
        assert!(TriageRules::parse(&restricted).is_ok());
    }

    #[test]
    fn an_unsupported_version_is_refused() {
        let text = file(PHONE_RULE).replacen("version = 1", "version = 2", 1);
        assert_problem(
            &only_problem(&text),
            "version",
            1,
            11,
            "unsupported version 2",
        );
    }

    #[test]
    fn every_problem_in_a_file_is_reported() {
        let text = file(&format!(
            "{}{}",
            PHONE_RULE.replace("skill = \"key_fob\"", "skill = \"nope\""),
            PHONE_RULE
                .replace("\"key_fob\"\noutcome", "\"gear_lock\"\noutcome")
                .replace("= 600", "= 0")
        ));
        let fields: Vec<String> = problems(&text)
            .into_iter()
            .map(|problem| problem.field)
            .collect();
        assert_eq!(
            fields,
            ["rule[0].skill", "rule[1].id", "rule[1].expected_fix_s"]
        );
    }

    #[test]
    fn a_rules_error_reads_as_a_sentence_and_converts_to_validation_errors() {
        let error =
            TriageRules::parse(&file(&format!("{PHONE_RULE}skil = 1\n"))).expect_err("refused");
        assert!(
            error
                .to_string()
                .starts_with("line 10, column 1: `rule[0].skil`: unknown field `skil`")
        );
        let errors = ValidationErrors::from(error);
        let first = errors.first().expect("one error");
        assert_eq!(first.field, "rule[0].skil");
        assert!(
            first
                .message
                .starts_with("line 10, column 1: unknown field")
        );
    }

    #[test]
    fn rules_using_every_field_round_trip_through_toml_and_json() {
        let text = "version = 1\nskills = [\"key_fob\"]\n\n[[rule]]\nid = \"r1\"\ndescription = \"all of it\"\ncategory = \"key_fob\"\nsymptoms_any = [\"a\", \"b\"]\nsymptoms_all = [\"c\"]\npowertrain = [\"ev\"]\nservice = [\"tow\", \"lockout\"]\noutcome = \"phone_solvable\"\nskill = \"key_fob\"\nexpected_fix_s = 300\ninstructions_hint = \"do this\"\n\n[[rule]]\nid = \"r2\"\ncategory = \"stuck\"\noutcome = \"needs_vehicle\"\ndispatch_service = \"winch\"\n\n[fallback]\noutcome = \"phone_solvable\"\nskill = \"key_fob\"\nexpected_fix_s = 900\n";
        let rules = TriageRules::parse(text).expect("valid");
        assert_eq!(
            TriageRules::parse(&rules.to_toml()).expect("round trip"),
            rules
        );
        let json = serde_json::to_string(&rules).expect("serializes");
        assert_eq!(TriageRules::from_json(&json).expect("round trip"), rules);
        assert_eq!(
            serde_json::from_str::<TriageRules>(&json).expect("round trip"),
            rules
        );
    }

    #[test]
    fn json_rules_are_validated_the_same_way_and_errors_name_the_field() {
        let json = r#"{"version": 1, "skills": ["key_fob"], "rule": [
            {"id": "fob", "category": "key_fob", "outcome": "phone_solvable", "skill": "kye_fob", "expected_fix_s": 600}
        ], "fallback": {"outcome": "needs_vehicle"}}"#;
        let error = TriageRules::from_json(json).expect_err("undeclared skill");
        let problem = error.first().expect("one problem");
        assert_eq!(problem.field, "rule[0].skill");
        assert!(problem.message.contains("unknown skill `kye_fob`"));
        assert!(serde_json::from_str::<TriageRules>(json).is_err());

        let typo = json.replace("\"category\"", "\"categroy\"");
        let error = TriageRules::from_json(&typo).expect_err("unknown key");
        let problem = error.first().expect("one problem");
        assert_eq!(problem.field, "rule[0].categroy");
        assert_eq!(problem.line, Some(2));
        assert!(
            problem.message.starts_with("unknown field `categroy`"),
            "{problem:?}"
        );
    }
}
