//! Authorization decisions from the Cedar policies in `policies/*.cedar`.
//!
//! Callers describe who is asking (`Principal`, with the role bindings or pull-secret
//! scope the identity store holds), what they want (`Action`) and on what (`Resource`);
//! `Authorizer::is_allowed` turns that into Cedar entities and evaluates the current
//! policy set. Policies reload as a whole: every file must parse, or the previous set
//! stays in force. No HTTP and no database here.

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Pull,
    Push,
    Delete,
    /// Administering an organisation: members, products, pull secrets.
    Manage,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Delete => "delete",
            Self::Manage => "manage",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    OrgAdmin,
    Pusher,
    Viewer,
}

/// A role on a whole organisation (`product: None`) or on one of its products.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleBinding {
    pub org: String,
    pub product: Option<String>,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Anonymous,
    User {
        name: String,
        global_admin: bool,
        bindings: Vec<RoleBinding>,
    },
    /// A robot credential of `org`, for all its products (`products: None`) or a list.
    PullSecret {
        name: String,
        org: String,
        products: Option<Vec<String>>,
        can_push: bool,
    },
    /// An edge site: pulls everything in `orgs` (whole organisations) and `products`
    /// (`org/product`), to mirror it.
    SmartProxy {
        name: String,
        orgs: Vec<String>,
        products: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    Repository {
        org: String,
        product: String,
        name: String,
        public: bool,
        /// The product's signing requirement: keys one of which must have signed a
        /// manifest for it to be pulled (empty: none).
        require_signed_by: Vec<String>,
    },
    Org {
        org: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy directory {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("policy file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("policy directory {0} has no .cedar files")]
    Empty(PathBuf),
}

/// A parsed, complete set of policies.
#[derive(Debug, Clone)]
pub struct Policies {
    set: PolicySet,
    files: Vec<PathBuf>,
}

impl Policies {
    /// Parse every `*.cedar` file of `dir`; any error refuses the whole set.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let io = |e| PolicyError::Io(dir.to_owned(), e);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(PolicyError::Empty(dir.to_owned()));
        }
        let mut set = PolicySet::new();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| PolicyError::Io(file.clone(), e))?;
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("policy");
            add_text(&mut set, stem, &text).map_err(|e| PolicyError::Parse(file.clone(), e))?;
        }
        Ok(Self { set, files })
    }

    /// The default policies shipped in `policies/gatehouse.cedar`, compiled in: used
    /// when no policy directory is configured and none is beside the working directory.
    pub fn builtin() -> Result<Self, PolicyError> {
        let mut set = PolicySet::new();
        let origin = PathBuf::from("<built-in>/gatehouse.cedar");
        add_text(&mut set, "gatehouse", BUILTIN).map_err(|e| PolicyError::Parse(origin.clone(), e))?;
        Ok(Self {
            set,
            files: vec![origin],
        })
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

const BUILTIN: &str = include_str!("../../policies/gatehouse.cedar");

/// Parse `text` into `set`, prefixing policy ids with `stem` (ids are per file in
/// Cedar, so files cannot collide).
fn add_text(set: &mut PolicySet, stem: &str, text: &str) -> Result<(), String> {
    let parsed = PolicySet::from_str(text).map_err(|e| format!("{e:?}"))?;
    for policy in parsed.policies() {
        let id = PolicyId::new(format!("{stem}/{}", policy.id()));
        set.add(policy.new_id(id)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Evaluates requests against the current policies; cheap to share.
pub struct Authorizer {
    current: RwLock<Arc<Policies>>,
    engine: cedar_policy::Authorizer,
}

fn uid(kind: &str, id: &str) -> Option<EntityUid> {
    let kind = EntityTypeName::from_str(&format!("Gatehouse::{kind}")).ok()?;
    Some(EntityUid::from_type_name_and_id(kind, EntityId::new(id)))
}

fn entity(uid: EntityUid, attrs: Vec<(&str, RestrictedExpression)>, parents: Vec<EntityUid>) -> Option<Entity> {
    let attrs: HashMap<String, RestrictedExpression> = attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Entity::new(uid, attrs, parents.into_iter().collect::<HashSet<_>>()).ok()
}

fn set_of(uids: Vec<EntityUid>) -> Option<RestrictedExpression> {
    Some(RestrictedExpression::new_set(
        uids.into_iter().map(RestrictedExpression::new_entity_uid),
    ))
}

impl Authorizer {
    pub fn new(policies: Policies) -> Self {
        Self {
            current: RwLock::new(Arc::new(policies)),
            engine: cedar_policy::Authorizer::new(),
        }
    }

    /// Replace the policies with those of `dir`, or keep the current ones and return why not.
    pub fn reload(&self, dir: &Path) -> Result<(), PolicyError> {
        let fresh = Policies::load_dir(dir)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(())
    }

    fn policies(&self) -> Arc<Policies> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether `principal` may do `action` on `resource`. Anything that cannot be
    /// evaluated is a denial.
    pub fn is_allowed(&self, principal: &Principal, action: Action, resource: &Resource) -> bool {
        self.decide(principal, action, resource, Context::empty())
    }

    /// `is_allowed` for pulling one manifest: the context carries `signed_by`, the
    /// names of the keys (of those the product requires) that verifiably signed it.
    pub fn is_allowed_to_pull_signed(&self, principal: &Principal, resource: &Resource, signed_by: &[String]) -> bool {
        let signers =
            RestrictedExpression::new_set(signed_by.iter().map(|k| RestrictedExpression::new_string(k.clone())));
        let Ok(context) = Context::from_pairs([("signed_by".to_owned(), signers)]) else {
            return false;
        };
        self.decide(principal, Action::Pull, resource, context)
    }

    fn decide(&self, principal: &Principal, action: Action, resource: &Resource, context: Context) -> bool {
        let Some((principal_uid, resource_uid, entities)) = build_entities(principal, resource) else {
            return false;
        };
        let Some(action_uid) = uid("Action", action.as_str()) else {
            return false;
        };
        let Ok(request) = Request::new(principal_uid, action_uid, resource_uid, context, None) else {
            return false;
        };
        let policies = self.policies();
        self.engine.is_authorized(&request, &policies.set, &entities).decision() == cedar_policy::Decision::Allow
    }
}

fn build_entities(principal: &Principal, resource: &Resource) -> Option<(EntityUid, EntityUid, Entities)> {
    let mut out = Vec::new();
    let resource_uid = match resource {
        Resource::Org { org } => {
            let org_uid = uid("Org", org)?;
            out.push(Entity::new_no_attrs(org_uid.clone(), HashSet::new()));
            org_uid
        }
        Resource::Repository {
            org,
            product,
            name,
            public,
            require_signed_by,
        } => {
            let org_uid = uid("Org", org)?;
            let product_uid = uid("Product", &format!("{org}/{product}"))?;
            let repo_uid = uid("Repository", &format!("{org}/{product}/{name}"))?;
            out.push(Entity::new_no_attrs(org_uid.clone(), HashSet::new()));
            out.push(entity(
                product_uid.clone(),
                vec![("public", RestrictedExpression::new_bool(*public))],
                vec![org_uid.clone()],
            )?);
            out.push(entity(
                repo_uid.clone(),
                vec![
                    ("org", RestrictedExpression::new_entity_uid(org_uid)),
                    ("product", RestrictedExpression::new_entity_uid(product_uid.clone())),
                    ("public", RestrictedExpression::new_bool(*public)),
                    (
                        "require_signed_by",
                        RestrictedExpression::new_set(
                            require_signed_by
                                .iter()
                                .map(|k| RestrictedExpression::new_string(k.clone())),
                        ),
                    ),
                ],
                vec![product_uid],
            )?);
            repo_uid
        }
    };
    let principal_uid = match principal {
        Principal::Anonymous => {
            let u = uid("Anonymous", "anonymous")?;
            out.push(Entity::new_no_attrs(u.clone(), HashSet::new()));
            u
        }
        Principal::User {
            name,
            global_admin,
            bindings,
        } => {
            let scope = |b: &RoleBinding| match &b.product {
                Some(p) => uid("Product", &format!("{}/{p}", b.org)),
                None => uid("Org", &b.org),
            };
            let with = |role: Role| -> Option<RestrictedExpression> {
                set_of(
                    bindings
                        .iter()
                        .filter(|b| b.role == role)
                        .map(scope)
                        .collect::<Option<Vec<_>>>()?,
                )
            };
            // org_admin is an organisation-wide role; a product-level binding of it grants nothing.
            let admin_orgs = bindings
                .iter()
                .filter(|b| b.role == Role::OrgAdmin && b.product.is_none());
            let admin_of = set_of(admin_orgs.map(|b| uid("Org", &b.org)).collect::<Option<Vec<_>>>()?)?;
            let u = uid("User", name)?;
            out.push(entity(
                u.clone(),
                vec![
                    ("global_admin", RestrictedExpression::new_bool(*global_admin)),
                    ("viewer_of", with(Role::Viewer)?),
                    ("pusher_of", with(Role::Pusher)?),
                    ("admin_of", admin_of),
                ],
                vec![],
            )?);
            u
        }
        Principal::PullSecret {
            name,
            org,
            products,
            can_push,
        } => {
            let u = uid("PullSecret", name)?;
            let listed = products
                .iter()
                .flatten()
                .map(|p| uid("Product", &format!("{org}/{p}")))
                .collect::<Option<Vec<_>>>()?;
            out.push(entity(
                u.clone(),
                vec![
                    ("org", RestrictedExpression::new_entity_uid(uid("Org", org)?)),
                    ("all_products", RestrictedExpression::new_bool(products.is_none())),
                    ("products", set_of(listed)?),
                    ("can_push", RestrictedExpression::new_bool(*can_push)),
                ],
                vec![],
            )?);
            u
        }
        Principal::SmartProxy { name, orgs, products } => {
            let u = uid("SmartProxy", name)?;
            let orgs = orgs.iter().map(|o| uid("Org", o)).collect::<Option<Vec<_>>>()?;
            let products = products.iter().map(|p| uid("Product", p)).collect::<Option<Vec<_>>>()?;
            out.push(entity(
                u.clone(),
                vec![("orgs", set_of(orgs)?), ("products", set_of(products)?)],
                vec![],
            )?);
            u
        }
    };
    let entities = Entities::from_entities(out, None).ok()?;
    Some((principal_uid, resource_uid, entities))
}

#[cfg(test)]
mod tests;
