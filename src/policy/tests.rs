use super::*;

fn shipped() -> Authorizer {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    Authorizer::new(Policies::load_dir(&dir).expect("the shipped policies parse"))
}

fn repo(org: &str, product: &str, public: bool) -> Resource {
    Resource::Repository {
        org: org.into(),
        product: product.into(),
        name: "app".into(),
        public,
        require_signed_by: Vec::new(),
    }
}

fn user(bindings: &[(&str, Option<&str>, Role)]) -> Principal {
    Principal::User {
        name: "u".into(),
        global_admin: false,
        bindings: bindings
            .iter()
            .map(|(org, product, role)| RoleBinding {
                org: (*org).into(),
                product: product.map(Into::into),
                role: *role,
            })
            .collect(),
    }
}

const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

fn allowed(a: &Authorizer, p: &Principal, r: &Resource) -> Vec<Action> {
    ALL.into_iter().filter(|act| a.is_allowed(p, *act, r)).collect()
}

#[test]
fn roles_grant_exactly_their_actions_in_their_org() {
    let a = shipped();
    let web = repo("acme", "web", false);
    assert_eq!(
        allowed(&a, &user(&[("acme", None, Role::Viewer)]), &web),
        [Action::Pull]
    );
    assert_eq!(
        allowed(&a, &user(&[("acme", None, Role::Pusher)]), &web),
        [Action::Pull, Action::Push]
    );
    assert_eq!(allowed(&a, &user(&[("acme", None, Role::OrgAdmin)]), &web), ALL);
    assert!(allowed(&a, &user(&[]), &web).is_empty(), "no binding, nothing");
}

#[test]
fn bindings_never_reach_another_org() {
    let a = shipped();
    let other = repo("globex", "web", false);
    for role in [Role::Viewer, Role::Pusher, Role::OrgAdmin] {
        assert!(
            allowed(&a, &user(&[("acme", None, role)]), &other).is_empty(),
            "{role:?}"
        );
    }
    let admin = user(&[("acme", None, Role::OrgAdmin)]);
    assert!(a.is_allowed(&admin, Action::Manage, &Resource::Org { org: "acme".into() }));
    assert!(!a.is_allowed(&admin, Action::Manage, &Resource::Org { org: "globex".into() }));
    let pusher = user(&[("acme", None, Role::Pusher)]);
    assert!(!a.is_allowed(&pusher, Action::Manage, &Resource::Org { org: "acme".into() }));
}

#[test]
fn product_bindings_cover_only_that_product() {
    let a = shipped();
    let p = user(&[("acme", Some("web"), Role::Pusher)]);
    assert_eq!(
        allowed(&a, &p, &repo("acme", "web", false)),
        [Action::Pull, Action::Push]
    );
    assert!(allowed(&a, &p, &repo("acme", "db", false)).is_empty());
    // org_admin is organisation-wide only.
    let half_admin = user(&[("acme", Some("web"), Role::OrgAdmin)]);
    assert!(allowed(&a, &half_admin, &repo("acme", "web", false)).is_empty());
}

#[test]
fn global_admin_may_do_anything_and_anonymous_only_pulls_public() {
    let a = shipped();
    let root = Principal::User {
        name: "admin".into(),
        global_admin: true,
        bindings: vec![],
    };
    assert_eq!(allowed(&a, &root, &repo("any", "thing", false)), ALL);
    assert!(a.is_allowed(&root, Action::Manage, &Resource::Org { org: "any".into() }));
    assert_eq!(
        allowed(&a, &Principal::Anonymous, &repo("acme", "web", true)),
        [Action::Pull]
    );
    assert!(allowed(&a, &Principal::Anonymous, &repo("acme", "web", false)).is_empty());
}

#[test]
fn pull_secrets_are_scoped_to_their_org_and_products() {
    let a = shipped();
    let whole_org = Principal::PullSecret {
        name: "ci".into(),
        org: "acme".into(),
        products: None,
        can_push: false,
    };
    assert_eq!(allowed(&a, &whole_org, &repo("acme", "web", false)), [Action::Pull]);
    assert!(allowed(&a, &whole_org, &repo("globex", "web", false)).is_empty());
    let listed = Principal::PullSecret {
        name: "ci".into(),
        org: "acme".into(),
        products: Some(vec!["web".into()]),
        can_push: true,
    };
    assert_eq!(
        allowed(&a, &listed, &repo("acme", "web", false)),
        [Action::Pull, Action::Push]
    );
    assert!(allowed(&a, &listed, &repo("acme", "db", false)).is_empty());
    assert!(!a.is_allowed(&listed, Action::Manage, &Resource::Org { org: "acme".into() }));
}

#[test]
fn names_with_quotes_or_separators_cannot_inject() {
    let a = shipped();
    let sneaky = Principal::User {
        name: "x\" || true || \"".into(),
        global_admin: false,
        bindings: vec![RoleBinding {
            org: "acme\"".into(),
            product: None,
            role: Role::OrgAdmin,
        }],
    };
    assert!(allowed(&a, &sneaky, &repo("acme", "web", false)).is_empty());
}

#[test]
fn a_broken_file_is_refused_and_the_previous_policies_stay() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/gatehouse.cedar");
    std::fs::copy(&shipped, dir.path().join("gatehouse.cedar")).unwrap();
    let a = Authorizer::new(Policies::load_dir(dir.path()).unwrap());
    let viewer = user(&[("acme", None, Role::Viewer)]);
    assert!(a.is_allowed(&viewer, Action::Pull, &repo("acme", "web", false)));

    std::fs::write(
        dir.path().join("extra.cedar"),
        "permit (principal, action, resource) when {",
    )
    .unwrap();
    let err = a.reload(dir.path()).unwrap_err().to_string();
    assert!(err.contains("extra.cedar"), "the error names the file: {err}");
    assert!(
        a.is_allowed(&viewer, Action::Pull, &repo("acme", "web", false)),
        "old set still in force"
    );

    // A valid change takes effect as a whole: forbid all pushes to product "frozen".
    std::fs::write(
        dir.path().join("extra.cedar"),
        "forbid (principal, action == Gatehouse::Action::\"push\", resource is Gatehouse::Repository) \
         when { resource.product == Gatehouse::Product::\"acme/frozen\" };",
    )
    .unwrap();
    a.reload(dir.path()).unwrap();
    let pusher = user(&[("acme", None, Role::Pusher)]);
    assert!(!a.is_allowed(&pusher, Action::Push, &repo("acme", "frozen", false)));
    assert!(a.is_allowed(&pusher, Action::Push, &repo("acme", "web", false)));
}

#[test]
fn an_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(Policies::load_dir(dir.path()), Err(PolicyError::Empty(_))));
}

#[test]
fn a_product_that_requires_signatures_refuses_manifests_no_accepted_key_signed() {
    let a = shipped();
    let viewer = user(&[("acme", None, Role::Viewer)]);
    let signed_repo = Resource::Repository {
        org: "acme".into(),
        product: "web".into(),
        name: "app".into(),
        public: false,
        require_signed_by: vec!["release".into(), "ci".into()],
    };
    assert!(
        a.is_allowed(&viewer, Action::Pull, &signed_repo),
        "tags and blobs: no manifest in question"
    );
    assert!(a.is_allowed_to_pull_signed(&viewer, &signed_repo, &["ci".into()]));
    assert!(!a.is_allowed_to_pull_signed(&viewer, &signed_repo, &[]));
    let admin = Principal::User {
        name: "root".into(),
        global_admin: true,
        bindings: vec![],
    };
    assert!(
        !a.is_allowed_to_pull_signed(&admin, &signed_repo, &[]),
        "global administrators are held to it too"
    );
    let edge = Principal::SmartProxy {
        name: "edge1".into(),
        orgs: vec!["acme".into()],
        products: vec![],
    };
    assert!(
        a.is_allowed_to_pull_signed(&edge, &signed_repo, &[]),
        "edges mirror everything and enforce it themselves"
    );
    // No requirement: the context changes nothing.
    assert!(a.is_allowed_to_pull_signed(&viewer, &repo("acme", "web", false), &[]));
}
