//! `vmrescue recipes [show ID]`: the repair recipes, and what one of them
//! audits on a target.

use anyhow::Result;
use vmrescue::attach::Target;
use vmrescue::recipe::plan::SysctlAudit;
use vmrescue::recipe::spec::RecipeSpec;
use vmrescue::recipe::{Catalog, Recipe};
use vmrescue::ExitCode;

use super::{open_target, Session};
use crate::cli::{RecipesArgs, RecipesCommand, TargetArgs};
use crate::output::{emit, Rendered};

/// `recipes --json` lists them; `recipes show ID --json` shows one.
#[derive(serde::Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum RecipesData<'a> {
    List(RecipeList<'a>),
    Shown(RecipeShown<'a>),
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct RecipeList<'a> {
    pub(crate) recipes: Vec<&'a RecipeSpec>,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct RecipeShown<'a> {
    pub(crate) recipe: &'a RecipeSpec,
    /// The settings it audits, as the named target has them now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) current: Option<Vec<SysctlAudit>>,
}

pub(crate) fn run(session: &Session, args: &RecipesArgs) -> Result<ExitCode> {
    let catalog = Catalog::load(args.recipes_dir.as_deref())?;
    match &args.show {
        None => {
            let text = catalog
                .recipes
                .iter()
                .map(|r| {
                    let auto = if r.spec.auto { " (auto)" } else { "" };
                    format!("{:<24} {}{auto}\n", r.spec.id, r.spec.title)
                })
                .collect();
            let recipes = catalog.recipes.iter().map(|r| &r.spec).collect();
            let list = RecipesData::List(RecipeList { recipes });
            emit(&session.sink, &Rendered::new(list, text))
        }
        Some(RecipesCommand::Show { id, target }) => show(session, catalog.get(id)?, target),
    }
}

fn show(session: &Session, recipe: &Recipe, target: &TargetArgs) -> Result<ExitCode> {
    let wants_target = target.disk.is_some() || target.image.is_some() || target.root.is_some();
    let current = if wants_target {
        let target = open_target(target)?;
        let audit = current_audit(recipe, &target);
        target.release()?;
        Some(audit?)
    } else {
        None
    };
    let mut text = crate::ui::render_recipe(recipe, session.style());
    if let Some(audit) = &current {
        text.push_str("on this target:\n");
        for line in audit {
            text.push_str(&line.render());
        }
    }
    let shown = RecipeShown {
        recipe: &recipe.spec,
        current,
    };
    emit(
        &session.sink,
        &Rendered::new(RecipesData::Shown(shown), text),
    )
}

/// The settings a recipe audits, as the target has them now (a plan with
/// no parameters given, which changes nothing).
fn current_audit(recipe: &Recipe, target: &Target) -> Result<Vec<SysctlAudit>> {
    let root = target.rootdir()?;
    let facts = vmrescue::recipe::facts::Facts::gather(&root)?;
    let params = vmrescue::recipe::engine::resolve_params(
        recipe,
        &Default::default(),
        &root,
        &facts,
        &Default::default(),
    )?;
    let plan =
        vmrescue::recipe::engine::plan(recipe, &params, &root, &facts, Some(target.layout()))?;
    Ok(plan.audit)
}
