import pytest


@pytest.fixture(scope="module")
def one_faiss_thread():
    """FAISS's OpenMP threads spin-wait: on a shared 2-core CI box one thread is 10-100x faster for tiny data."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
