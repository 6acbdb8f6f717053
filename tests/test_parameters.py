"""Parameters, profiles and grid expansion: what is valid, and what each error says."""

import pytest
import yaml

from bsnb import parameters, profiles


def write_profile(tmp_path, **sections):
    base = yaml.safe_load((parameters.PARAMS_DIR / "smoke.yaml").read_text())
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key].update(value)
        else:
            base[key] = value
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def test_every_profile_in_params_is_valid():
    for path in profiles.profile_paths():
        jobs = profiles.expand(profiles.load_profile(path))
        assert jobs, path


def test_quick_profile_sweeps_batch_sizes_16_to_1024_with_three_seeds():
    jobs = [j for j in profiles.expand(profiles.load_profile("quick")) if j.notebook == "02_empirical_comparison"]
    sizes = sorted(j.params["batch_size"] for j in jobs)
    assert sizes == [16, 32, 64, 128, 256, 512, 1024]
    assert all(len(j.params["seeds"]) >= 3 and j.params["dataset"] == "mnist1d" for j in jobs)
    assert all(j.axes == ("batch_size",) for j in jobs)


def test_grid_is_the_product_of_list_values_and_list_of_lists_for_seeds(tmp_path):
    path = write_profile(tmp_path, nuisance={"lr": [0.01, 0.1], "seeds": [[0], [1, 2]]},
                         notebooks=["02_empirical_comparison"])
    jobs = profiles.expand(profiles.load_profile(path))
    assert len(jobs) == 2 * 2 * 2  # batch sizes x lrs x seed lists
    assert {tuple(j.params["seeds"]) for j in jobs} == {(0,), (1, 2)}
    assert len({j.job_id for j in jobs}) == len(jobs)


def test_a_dependent_notebook_brings_the_run_it_reads(tmp_path):
    path = write_profile(tmp_path, notebooks={"02_empirical_comparison": {"scientific": {"batch_size": [16]}},
                                              "03_sharpness": {"scientific": {"batch_size": [16, 32]}}})
    jobs = profiles.expand(profiles.load_profile(path))
    by_nb = {}
    for j in jobs:
        by_nb.setdefault(j.notebook, []).append(j)
    assert sorted(j.params["batch_size"] for j in by_nb["02_empirical_comparison"]) == [16, 32]  # 32 added
    assert len(by_nb["03_sharpness"]) == 2
    for j in by_nb["03_sharpness"]:
        assert j.source.notebook == "02_empirical_comparison"
        assert j.source.params["batch_size"] == j.params["batch_size"]
        assert j.source.job_id in {s.job_id for s in by_nb["02_empirical_comparison"]}
    assert jobs.index(by_nb["03_sharpness"][0]) > max(jobs.index(j) for j in by_nb["02_empirical_comparison"])


def test_confirmation_seeds_add_a_job_after_each_search_that_reads_it(tmp_path):
    search = {"scientific": {"batch_size": [16, 64], "remedy": ["tuned"]}, "nuisance": {"lr_grid": [0.05, 0.2]},
              "fixed": {"patience": 3}}
    path = write_profile(tmp_path, notebooks={"04_closing_the_gap": [search]}, nuisance={"confirm_seeds": [100, 101]})
    jobs = profiles.expand(profiles.load_profile(path))
    tuned = [j for j in jobs if j.params.get("remedy") == "tuned"]
    confirm = [j for j in jobs if j.params.get("remedy") == "confirm"]
    assert len(tuned) == len(confirm) == 2 and all(j.params["confirm_seeds"] == [] for j in tuned)
    for c in confirm:
        assert c.source in tuned and c.params["seeds"] == [100, 101] and "remedyconfirm" in c.job_id
        assert c.source.params["batch_size"] == c.params["batch_size"] and c.source.params["seeds"] == [0, 1]
        assert jobs.index(c) > jobs.index(c.source)
    # the search is the same job with or without confirmation seeds: adding them reruns no search
    plain = profiles.expand(profiles.load_profile(write_profile(tmp_path, notebooks={"04_closing_the_gap": [search]})))
    assert {j.job_id for j in plain if j.params.get("remedy") == "tuned"} == {j.job_id for j in tuned}


def test_notebook_sections_accept_only_groups(tmp_path):
    path = write_profile(tmp_path, notebooks={"03_sharpness": {"epochs": 3}})
    with pytest.raises(parameters.ProfileError, match=r"03_sharpness: expected a mapping \(or a list of mappings\)"):
        profiles.load_profile(path)


def test_job_id_is_readable_and_ignores_system_parameters():
    job = profiles.Job("02_empirical_comparison", {**parameters.defaults("02_empirical_comparison")}, ("batch_size",))
    other = profiles.Job(job.notebook, {**job.params, "run_dir": "/elsewhere", "threads": 7}, job.axes)
    assert job.job_id.startswith("02-bs64-")
    assert job.job_id == other.job_id


@pytest.mark.parametrize("sections, words", [
    ({"scientific": {"batch_sise": [16]}}, ["batch_sise", "unknown parameter", "batch_size"]),
    ({"scientific": {"batch_size": ["abc"]}}, ["batch_size", "'abc'", "an integer >= 1"]),
    ({"scientific": {"batch_size": [0, 16]}}, ["batch_size = 0", "an integer >= 1"]),
    ({"scientific": {"batch_size": [16, 512]}}, ["batch_size = 512", "n_train = 256", "from 1 to 256"]),
    ({"nuisance": {"lr": -1}}, ["lr = -1", "a number from 1e-08 to 10"]),
    ({"nuisance": {"lr": "fast"}}, ["lr = 'fast'", "a number"]),
    ({"nuisance": {"optimizer": "rmsprop"}}, ["optimizer = 'rmsprop'", "one of 'sgd', 'adam'"]),
    ({"nuisance": {"seeds": [0, 0]}}, ["seeds = [0, 0]", "without repeats"]),
    ({"nuisance": {"seeds": []}}, ["seeds = []", "at least 1 item"]),
    ({"nuisance": {"seeds": 3}}, ["seeds = 3", "a list of integers"]),
    ({"fixed": {"batch_norm": "yes"}}, ["batch_norm = 'yes'", "true or false"]),
    ({"fixed": {"dataset": "imagenet"}}, ["dataset = 'imagenet'", "'mnist1d', 'digits'"]),
    ({"fixed": {"dataset": "digits", "n_train": 1700}}, ["= 1956 exceeds the 1797 examples", "digits"]),
    ({"fixed": {"lr": 0.1}}, ["lr is a nuisance parameter", "move it under nuisance"]),
    ({"fixed": {"small_batch": 64, "large_batch": 16}}, ["small_batch = 64", "smaller than large_batch = 16"]),
    ({"fixed": {"accumulate": 64}, "scientific": {"batch_size": [32]}}, ["accumulate = 64 exceeds batch_size = 32", "at most 32"]),
    ({"epochz": 3}, ["unknown key 'epochz'"]),
    ({"workers": 0}, ["workers = 0", "an integer >= 1"]),
    ({"threads": "4"}, ["threads = '4'", "an integer >= 1"]),
    ({"notebooks": ["99_nothing"]}, ["'99_nothing'", "02_empirical_comparison"]),
    ({"notebooks": {"03_sharpness": {"fixed": {"epsilons": [0.001, -1]}}}}, ["epsilons = [0.001, -1]", "a list of numbers"]),
    ({"notebooks": {"03_sharpness": {"fixed": {"top_k": 0}}}}, ["top_k = 0", "from 1 to 100"]),
    ({"notebooks": {"04_closing_the_gap": {"scientific": {"remedy": ["confirm"]}}}},
     ["remedy confirm is not given in a profile", "confirm_seeds beside remedy tuned"]),
    ({"notebooks": {"04_closing_the_gap": {"scientific": {"remedy": ["sqrt"]}, "nuisance": {"confirm_seeds": [9]}}}},
     ["confirm_seeds = [9] belongs to remedy tuned", "not to remedy sqrt"]),
    ({"notebooks": {"04_closing_the_gap": {"scientific": {"remedy": ["tuned"]}, "nuisance": {"confirm_seeds": [1, 9]}}}},
     ["confirm_seeds = [1, 9] repeats the search's seeds [0, 1]"]),
    ({"notebooks": {"02_empirical_comparison": {"nuisance": {"seeds": [0, 5]}},
                    "04_closing_the_gap": {"scientific": {"remedy": ["tuned"]}, "nuisance": {"confirm_seeds": [5, 9]}}}},
     ["confirm_seeds [5] are seeds of comparison jobs too (02-", "seed ids no comparison uses"]),
])
def test_bad_profiles_name_the_parameter_its_value_and_what_is_allowed(tmp_path, sections, words):
    path = write_profile(tmp_path, **sections)
    with pytest.raises(parameters.ProfileError) as err:
        profiles.expand(profiles.load_profile(path))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


def test_every_problem_is_reported_at_once(tmp_path):
    path = write_profile(tmp_path, nuisance={"lr": -1, "optimizer": "rmsprop"})
    with pytest.raises(parameters.ProfileError) as err:
        profiles.expand(profiles.load_profile(path))
    # both problems, each said once although both jobs of the grid have them
    assert len(err.value.problems) == 2
    assert "lr = -1" in str(err.value) and "optimizer = 'rmsprop'" in str(err.value)


def test_unknown_profile_name_lists_the_known_ones():
    with pytest.raises(parameters.ProfileError, match="quick"):
        profiles.load_profile("no-such-profile")


def test_check_value_coerces_ints_to_floats_but_not_bools_to_ints():
    assert parameters.check_value("lr", 1) == (1.0, None)
    assert parameters.check_value("batch_size", True)[1] is not None
    assert parameters.check_value("lr", float("nan"))[1] is not None


def test_from_namespace_refuses_a_misspelt_injected_parameter():
    ns = {**parameters.defaults("02_empirical_comparison"), "batchsize": 32, "In": [], "_": None, "parameters": parameters}
    with pytest.raises(parameters.ProfileError, match="unknown parameter 'batchsize'"):
        parameters.from_namespace("02_empirical_comparison", ns)
    del ns["batchsize"]
    params = parameters.from_namespace("02_empirical_comparison", ns)
    assert params == parameters.defaults("02_empirical_comparison")


def test_from_namespace_checks_values_like_the_sweep():
    ns = {**parameters.defaults("02_empirical_comparison"), "batch_size": "abc"}
    with pytest.raises(parameters.ProfileError, match="batch_size = 'abc'"):
        parameters.from_namespace("02_empirical_comparison", ns)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_profile_is_refused(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(parameters.ProfileError, match="the profile is empty"):
        profiles.load_profile(path)
