//! Which backend repositories a public name reads from and pushes to (push/normal
//! pairs, distributions), and deleting a repository with what serves it.

use super::Gateway;
use super::mapping::{self, RepoPath};
use crate::error::Error;
use crate::store::versions::{DeletedRepository, Distribution};
use std::sync::Arc;

impl Gateway {
    /// Where pushes to `path` go: its push repository with the in-process store; the
    /// repository of that name with any other backend.
    pub(crate) fn push_repository(&self, path: &RepoPath) -> String {
        match &self.inner.versioned {
            Some(_) => mapping::push_repository(&path.backend_name()),
            None => path.backend_name(),
        }
    }

    /// Make sure the push repository of `path` exists, paired with its normal
    /// repository: the one the organisation's naming pattern names (`normal: None`, a
    /// push), or `normal` (content operations on a repository by its name).
    pub(crate) async fn ensure_push_pair(&self, path: &RepoPath, normal: Option<&str>) -> Result<(), Error> {
        let Some(registry) = &self.inner.versioned else {
            return Ok(());
        };
        let push = self.push_repository(path);
        if self.inner.pairs.contains_key(&push) {
            return Ok(());
        }
        let normal = match normal {
            Some(n) => n.to_owned(),
            None => self.pattern_name(path).await?,
        };
        registry.ensure_push_pair(&push, &normal).await?;
        self.inner.pairs.insert(push, ());
        self.inner.distributions.invalidate(&normal);
        Ok(())
    }

    /// The normal repository a push to `path` is copied into, by the org's naming pattern.
    pub(crate) async fn pattern_name(&self, path: &RepoPath) -> Result<String, Error> {
        let pattern = self.inner.identities.org(&path.org).await?.map_or_else(
            || crate::identity::DEFAULT_NAMING_PATTERN.to_owned(),
            |o| o.naming_pattern,
        );
        Ok(
            crate::identity::expand_naming_pattern(&pattern, &path.org, &path.product, &path.name)
                .unwrap_or_else(|| path.backend_name()),
        )
    }

    /// The distribution of a public name, if any (cached for seconds).
    pub(crate) async fn distribution(&self, path: &RepoPath) -> Result<Option<Arc<Distribution>>, Error> {
        let Some(registry) = &self.inner.versioned else {
            return Ok(None);
        };
        let name = path.backend_name();
        if let Some(d) = self.inner.distributions.get(&name) {
            return Ok(d);
        }
        let d = registry.distribution(&name).await?.map(Arc::new);
        self.inner.distributions.insert(name, d.clone());
        Ok(d)
    }

    /// Forget a cached distribution (after changing it).
    pub(crate) fn distribution_changed(&self, name: &str) {
        self.inner.distributions.invalidate(name);
    }

    /// Where pulls of `path` read: its distribution's repository; else (pushed under a
    /// name the naming pattern distributes elsewhere) its push repository; with another
    /// registry as the backend, the repository of that name.
    pub(crate) async fn read_repository(&self, path: &RepoPath) -> Result<String, Error> {
        if self.inner.versioned.is_none() {
            return Ok(path.backend_name());
        }
        Ok(match self.distribution(path).await? {
            Some(d) => d.served_from.clone(),
            None => self.push_repository(path),
        })
    }

    /// Delete the repository `path` names (its normal repository, versions, push
    /// repositories and distributions), and forget them here and on every replica.
    pub(crate) async fn delete_repository(&self, path: &RepoPath) -> Result<DeletedRepository, Error> {
        let Some(registry) = &self.inner.versioned else {
            return Err(Error::new(
                crate::error::ErrorCode::Unsupported,
                "deleting a repository needs the in-process store",
            ));
        };
        let normal = path.backend_name();
        let push = self.push_repository(path);
        let removed = registry.delete_repository(&normal, Some(&push)).await?;
        // Forgets the pairs and distributions cached here, and tells the other replicas.
        self.changed();
        Ok(removed)
    }
}
