#!/usr/bin/env bash

#PBS -N bsnb
#PBS -q gpu
#PBS -A myproject
#PBS -l select=1:ncpus=4:mem=16GB:ngpus=1
#PBS -l walltime=04:00:00
module load cuda
source ~/bsnb/.venv/bin/activate
PYTHON -m distributed.cli.dask_worker tcp://SCHEDULER --name dummy-name --nthreads 1 --memory-limit 14.90GiB --nanny --death-timeout 60 --resources GPU=1
