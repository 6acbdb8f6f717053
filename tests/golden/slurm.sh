#!/usr/bin/env bash

#SBATCH -J bsnb
#SBATCH -p gpu
#SBATCH -A myproject
#SBATCH -n 1
#SBATCH --cpus-per-task=4
#SBATCH --mem=15G
#SBATCH -t 04:00:00
#SBATCH --gres=gpu:1
module load cuda
source ~/bsnb/.venv/bin/activate
PYTHON -m distributed.cli.dask_worker tcp://SCHEDULER --name dummy-name --nthreads 1 --memory-limit 14.90GiB --nanny --death-timeout 60 --resources GPU=1
