"""scikit-learn's own estimator check suite on fastnn.sklearn's estimators."""
import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# check name -> why it is expected to fail
EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data":
        "float32 by default, and the L2 term scales with the rows of a batch, which repeating samples "
        "changes (as in scikit-learn's MLP); tests/test_sklearn.py runs it in float64 without L2",
}


@parametrize_with_checks([MLPClassifier(max_iter=100, random_state=0), MLPRegressor(max_iter=100, random_state=0)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_check(estimator, check):
    check(estimator)
