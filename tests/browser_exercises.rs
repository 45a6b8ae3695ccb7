//! The page built on a student's functions (`trunk build --features exercises`) in a real
//! browser: it says whose code ran and marks every value where the student's code and the
//! reference disagree.
//!
//! `scripts/exercise_loop.sh` runs this on a copy of the checkout after writing two exercises
//! with one mistake each, as a student might:
//! - exercise 4 (gae) returns `R_t = A_t`, forgetting to add `V(s_t)` back;
//! - exercise 2 (value_loss) leaves out the 0.5.
//!
//! The test knows those mistakes: every return cell must be marked with the student's value
//! (which is then the advantage), no delta or advantage cell may be, and the value loss must be
//! marked at twice the reference's.

mod common;

use std::time::Duration;

use common::browser::Page;

const STARTUP: Duration = Duration::from_secs(300);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + b.abs())
}

async fn marked(page: &Page, testid: &str) -> bool {
    page.attr(testid, "class").await.contains("differs")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the page built with --features exercises on the two mistakes scripts/exercise_loop.sh writes"]
async fn the_page_marks_where_the_students_code_differs() {
    let page = Page::open("?backend=flex&rollouts=3&max_new_tokens=12&minibatch=3&stage=gae").await;
    page.set_viewport(1280, 800).await;
    page.wait_state("status", "idle", STARTUP).await;

    let banner = page.text("exercises-banner").await;
    for ran in ["policy_loss reference", "value_loss yours", "gae yours"] {
        assert!(banner.contains(ran), "banner: {banner}");
    }

    // GAE: the table shows the reference; each return shows the student's value under it.
    page.click("btn-all").await;
    assert_eq!(page.attr("gae-exercise", "data-state").await, "differs");
    let summary = page.text("gae-exercise").await;
    let mut rows = 0;
    for row in 0..3 {
        page.click(&format!("row-{row}")).await;
        page.click("btn-all").await;
        let mut t = 0;
        while page.exists(&format!("gae-row-{t}")).await {
            let ret = format!("gae-ret-{t}");
            assert!(marked(&page, &ret).await, "row {row}: {ret} not marked");
            let yours: f64 = page.attr(&ret, "data-other").await.parse().unwrap();
            let advantage = page.number(&format!("gae-adv-{t}")).await;
            assert!(
                close(yours, advantage),
                "row {row} t {t}: the student's return {yours} should be A_t = {advantage}"
            );
            assert!(page.text(&ret).await.contains("yours"));
            for cell in ["delta", "adv", "white"] {
                let id = format!("gae-{cell}-{t}");
                assert!(!marked(&page, &id).await, "row {row}: {id} marked");
            }
            t += 1;
        }
        rows += t;
    }
    assert!(
        summary.contains(&format!("differs from the reference on {rows} of")),
        "{summary} ({rows} return cells)"
    );
    page.click("row-0").await;
    page.click("btn-all").await;
    page.scroll_to("gae-table").await;
    // The marked cells carry the other side's number under them: every column still shows.
    assert_eq!(page.hidden_behind_scroll_bars().await, Vec::<String>::new());
    page.screenshot("exercises-gae-marked.png").await;

    // Update: the returns the update used were the student's: marked, the reference's under.
    page.click("tab-update").await;
    page.click("btn-all").await;
    assert!(marked(&page, "upd-ret-0").await);
    assert!(page.text("upd-ret-0").await.contains("reference"));
    assert!(!marked(&page, "upd-adv-0").await);
    // Exercises 1, 2, 3 and 5 on the batch: only the value loss and what it feeds differ.
    assert_eq!(
        page.attr("check-ex2-value-loss", "data-state").await,
        "differs"
    );
    let yours = page.number("check-ex2-value-loss-yours").await;
    let reference = page.number("check-ex2-value-loss-ref").await;
    assert!(reference > 0.0);
    assert!(
        close(yours, 2.0 * reference),
        "value loss: yours {yours}, reference {reference}: the 0.5 is missing"
    );
    assert_eq!(
        page.attr("check-ex2-clip-frac", "data-state").await,
        "match"
    );
    assert_eq!(
        page.text("check-ex1-policy-loss-yours").await,
        "not written"
    );
    assert_eq!(
        page.attr("check-ex1-policy-loss", "data-state").await,
        "todo"
    );
    assert_eq!(page.attr("check-ex3-entropy", "data-state").await, "todo");
    assert_eq!(page.attr("check-ex5-total", "data-state").await, "todo");
    page.scroll_to("exercise-check").await;
    assert_eq!(page.hidden_behind_scroll_bars().await, Vec::<String>::new());
    page.screenshot("exercises-update-marked.png").await;
    page.finish().await;
}
