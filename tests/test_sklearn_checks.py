"""scikit-learn's own estimator check suite on fastnn.sklearn's estimators, with a stochastic solver and
with L-BFGS."""
import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@parametrize_with_checks([MLPClassifier(max_iter=100, random_state=0), MLPRegressor(max_iter=100, random_state=0),
                          MLPClassifier(solver="lbfgs", max_iter=100, random_state=0),
                          MLPRegressor(solver="lbfgs", max_iter=100, random_state=0)])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_check(estimator, check):
    check(estimator)
